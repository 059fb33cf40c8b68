"""One run in full (config, final metrics, training curves, artifacts, lineage; a profiles run's user profiles one
user at a time), and several runs side by side."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from seqrec.report import row_label
from seqrec.store.commands import worker_of
from seqrec.tui.base import StoreScreen, duration, number, status_markup
from seqrec.tui.plot import sparkline

PROFILES_KIND = "profiles"  # the run kind and artifact kind of `seqrec profiles generate`


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


def reranking_summary(config: dict, final: dict[str, dict[str, float]]) -> Table:
    """A re-ranking run at a glance: the LLM and how it was read, how its answers fared, and the paired numbers."""
    counts, calls = final.get("rerank", {}), final.get("llm", {})
    summary = plain_table(expand=False)
    summary.add_row(Text("llm", style="cyan"), f"{config.get('llm')} ({config.get('backend')})")
    summary.add_row(Text("mode", style="cyan"),
                    f"{config.get('mode')}, top {config.get('top_k')}, {config.get('permutations')} permutation(s), "
                    f"alpha {config.get('alpha')}, noise {config.get('noise') or 'none'}, "
                    f"users {config.get('users') or 'all'}")
    summary.add_row(Text("answers", style="cyan"),
                    " · ".join(f"{name} {int(counts.get(key, 0))}" for name, key in
                               (("parsed", "parsed"), ("repaired", "repaired"), ("fallen back", "fallback"))))
    summary.add_row(Text("calls", style="cyan"),
                    " · ".join(f"{name} {int(calls.get(key, 0))}" for name, key in
                               (("cache hits", "llm_cache_hits"), ("fresh", "llm_fresh_calls"),
                                ("failures", "llm_failures"))))
    for metric in ("ndcg@10", "recall@10"):
        summary.add_row(Text(metric, style="cyan"), f"{number(final.get('test', {}).get(metric))} re-ranked, "
                                                    f"{number(final.get('base', {}).get(metric))} base")
    return summary


class RunScreen(StoreScreen):
    """Everything about one run; redrawn while the run is still writing."""

    BINDINGS = [Binding("n", "profile(1)", "Next user"), Binding("p", "profile(-1)", "Previous user")]

    def __init__(self, run_id: int):
        super().__init__()
        self.run_id = run_id
        self.kind: str | None = None
        self.profile_index = 0  # which user's profile a profiles run shows, in user order
        self.profiles: dict[str, str] | None = None  # read once: a finished run's profiles do not change

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        with VerticalScroll():
            yield Static(id="body")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        run = self.store.get_run(self.run_id)
        if run.kind != self.kind:
            self.kind = run.kind
            self.refresh_bindings()
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
        final = self.store.final_metrics(run.id)
        if run.kind == "rerank":
            yield section("re-ranking", reranking_summary(run.config, final))
        finals = plain_table("split", "metric", "final")
        for split, values in final.items():
            for key, value in sorted(values.items()):
                finals.add_row(split, key, number(value))
        yield section("final metrics", finals)
        yield section("curves", self.curves())
        if run.kind == PROFILES_KIND:
            yield self.profile_section()
        artifacts = plain_table("id", "kind", "bytes", "path")
        for artifact in self.store.artifacts(run.id):
            artifacts.add_row(str(artifact.id), artifact.kind, f"{artifact.bytes:,}", artifact.path)
        yield section("artifacts", artifacts if artifacts.row_count else Text("none", style="dim"))
        yield section("lineage", self.lineage())

    def check_action(self, action: str, parameters: tuple) -> bool:
        """The profile keys only where there are profiles to page through."""
        return action != "profile" or self.kind == PROFILES_KIND

    def action_profile(self, step: int) -> None:
        if self.profiles:
            self.profile_index = (self.profile_index + step) % len(self.profiles)
            self.reload()

    def profile_section(self) -> Group:
        if self.profiles is None:
            written = [artifact for artifact in self.store.artifacts(self.run_id, kind=PROFILES_KIND)
                       if Path(artifact.path).exists()]
            if not written:
                return section("profiles", Text("none written yet", style="dim"))
            by_user = json.loads(Path(written[-1].path).read_text(encoding="utf-8"))
            self.profiles = dict(sorted(by_user.items(), key=lambda item: int(item[0])))
        if not self.profiles:
            return section("profiles", Text("no users", style="dim"))
        user, text = list(self.profiles.items())[self.profile_index]
        return section(f"profile of user {user} ({self.profile_index + 1} of {len(self.profiles)}; n / p: next / "
                       "previous user)", Text(text))

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
