"""One run in full (config, final metrics, training curves, artifacts, lineage), and several runs side by side."""

from __future__ import annotations

import json

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from seqrec.report import row_label
from seqrec.store.commands import worker_of
from seqrec.tui.base import StoreScreen, duration, number, status_markup
from seqrec.tui.plot import sparkline


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config as dotted keys with JSON values, so that two configs can be compared key by key."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, default=str)
    return flat


def section(title: str, body) -> Group:
    return Group(Text(title, style="bold underline"), body, Text(""))


def plain_table(*columns: str, **options) -> Table:
    table = Table(box=None, pad_edge=False, show_header=bool(columns), header_style="dim", **options)
    for column in columns:
        table.add_column(column)
    return table


class RunScreen(StoreScreen):
    """Everything about one run; redrawn while the run is still writing."""

    def __init__(self, run_id: int):
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        with VerticalScroll():
            yield Static(id="body")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        run = self.store.get_run(self.run_id)
        self.query_one("#title", Static).update(
            f"[b]run {run.id}[/b] {run.kind} {status_markup(run.status)} · {row_label(run.config)} · "
            f"{run.dataset or '-'} · seed {run.seed} · {duration(run.duration_s)}")
        self.query_one("#body", Static).update(Group(*self.sections(run)))

    def sections(self, run):
        if worker_of(run):
            yield Text(f"worker {worker_of(run)}", style="cyan")
        if run.error:
            yield Text(run.error.splitlines()[0], style="red")
        config = plain_table(expand=False)
        for key, value in flatten(run.config).items():
            config.add_row(Text(key, style="cyan"), value)
        yield section(f"config (experiment {run.experiment or '-'}, hash {run.config_hash[:12]})", config)
        finals = plain_table("split", "metric", "final")
        for split, values in self.store.final_metrics(run.id).items():
            for key, value in sorted(values.items()):
                finals.add_row(split, key, number(value))
        yield section("final metrics", finals)
        yield section("curves", self.curves())
        artifacts = plain_table("id", "kind", "bytes", "path")
        for artifact in self.store.artifacts(run.id):
            artifacts.add_row(str(artifact.id), artifact.kind, f"{artifact.bytes:,}", artifact.path)
        yield section("artifacts", artifacts if artifacts.row_count else Text("none", style="dim"))
        yield section("lineage", self.lineage())

    def curves(self):
        series: dict[str, list[tuple[int, float]]] = {}
        for metric in self.store.metrics(self.run_id):
            if metric.step is not None:
                series.setdefault(f"{metric.split}/{metric.key}", []).append((metric.step, metric.value))
        if not series:
            return Text("no metrics logged per step yet", style="dim")
        table = plain_table("series", "curve", "first", "last", "steps")
        for name, points in series.items():
            values = [value for _, value in sorted(points, key=lambda point: point[0])]
            table.add_row(name, Text(sparkline(values, 24), style="green"), number(values[0]), number(values[-1]),
                          str(len(values)))
        return table

    def lineage(self) -> Text:
        lines = [f"input: run {link.input_run_id}" + (f", artifact {link.artifact_id} ({link.role})"
                                                      if link.artifact_id else "")
                 for link in self.store.inputs(self.run_id)]
        consumers = sorted({link.run_id for link in self.store.consumers(self.run_id)})
        if consumers:
            lines.append("used by runs " + ", ".join(map(str, consumers)))
        return Text("\n".join(lines) or "no inputs, no consumers", style="" if lines else "dim")


class CompareScreen(StoreScreen):
    """Two or more runs side by side: the config keys that differ, then every final metric (best in bold)."""

    def __init__(self, run_ids: list[int]):
        super().__init__()
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield DataTable(id="compare", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        runs = [self.store.get_run(run_id) for run_id in self.run_ids]
        table = self.query_one("#compare", DataTable)
        table.clear(columns=True)
        table.add_column("", key="field")
        for run in runs:
            table.add_column(f"run {run.id}", key=str(run.id))
        fields = [{"kind": run.kind, "experiment": run.experiment, "dataset": run.dataset, "seed": run.seed,
                   "status": run.status, **flatten(run.config)} for run in runs]
        keys = list(dict.fromkeys(key for run_fields in fields for key in run_fields))
        differing = [key for key in keys if len({str(run_fields.get(key)) for run_fields in fields}) > 1]
        for key in differing:
            table.add_row(Text(key, style="cyan"), *(str(run_fields.get(key, "")) for run_fields in fields))
        finals = [self.store.final_metrics(run.id) for run in runs]
        metric_names = dict.fromkeys((split, key) for final in finals for split in final for key in final[split])
        for split, key in metric_names:
            values = [final.get(split, {}).get(key) for final in finals]
            # ranking metrics (key@k) are better when higher; losses and the like are shown without a winner
            best = max((value for value in values if value is not None), default=None) if "@" in key else None
            table.add_row(f"{split}/{key}", *(Text(number(value), style="bold" if value == best else "")
                                              for value in values))
        self.query_one("#title", Static).update(
            f"[b]compare[/b] {len(differing)} of {len(keys)} fields differ; final metrics, best in bold")
