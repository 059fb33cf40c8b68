"""The dashboard's home: every run with its headline test metrics, filtered, sorted and selectable for comparison."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from seqrec.report import row_label
from seqrec.store import Run
from seqrec.tui.base import StoreScreen, number, shorten, status_markup
from seqrec.tui.detail import CompareScreen, RunScreen
from seqrec.tui.reports import ReportScreen

FILTER_KEYS = ("experiment", "kind", "status", "dataset")
PREFERRED_METRICS = ("ndcg@10", "recall@10", "hr@10", "hr@1", "ndcg@20", "recall@20")
INFO_COLUMNS = ("sel", "id", "status", "model", "dataset", "seed")  # metrics follow, then TRAILING_COLUMNS
TRAILING_COLUMNS = ("kind", "experiment")


def parse_filter(text: str) -> tuple[dict[str, str], list[str]]:
    """'exp=quick status=finished sasrec' -> ({'experiment': 'quick', 'status': 'finished'}, ['sasrec']).

    Keys may be abbreviated; bare words must each appear in a run's kind, experiment, dataset, status or model.
    """
    fields, words = {}, []
    for token in text.split():
        key, equals, value = token.partition("=")
        if not equals:
            words.append(token.lower())
            continue
        names = [name for name in FILTER_KEYS if name.startswith(key.lower())] if key else []
        if len(names) != 1:
            raise ValueError(f"unknown filter {key!r} (keys: {' '.join(FILTER_KEYS)})")
        fields[names[0]] = value
    return fields, words


def run_matches(run: Run, fields: dict[str, str], words: list[str]) -> bool:
    if any(str(getattr(run, key) or "") != value for key, value in fields.items()):
        return False
    haystack = " ".join(str(part or "") for part in (run.kind, run.experiment, run.dataset, run.status,
                                                     row_label(run.config))).lower()
    return all(word in haystack for word in words)


def metric_order(keys: set[str]) -> list[str]:
    return [key for key in PREFERRED_METRICS if key in keys] + sorted(keys - set(PREFERRED_METRICS))


class RunsScreen(StoreScreen):
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("space", "toggle_select", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "reports", "Reports"),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    def __init__(self, initial_filter: str = ""):
        super().__init__()
        self.initial_filter = initial_filter
        self.runs: list[Run] = []
        self.metrics: dict[int, dict[str, float]] = {}
        self.metric_keys: list[str] = []
        self.selected: set[int] = set()
        self.sort_column = "id"
        self.descending = True
        self.filter_error = ""

    def compose(self) -> ComposeResult:
        yield Input(self.initial_filter, placeholder="/ filter: experiment= kind= status= dataset= or words",
                    id="filter", compact=True, select_on_focus=False)
        yield Static(id="status")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.query_one(DataTable).focus()

    @property
    def table(self) -> DataTable:
        return self.query_one("#runs", DataTable)

    def reload(self) -> None:
        self.runs = self.store.list_runs(limit=None)
        self.metrics = self.store.final_metrics_of([run.id for run in self.runs], split="test")
        self.metric_keys = metric_order({key for values in self.metrics.values() for key in values})
        self.show()

    def visible_runs(self) -> list[Run]:
        try:
            fields, words = parse_filter(self.query_one("#filter", Input).value)
        except ValueError as exc:
            self.filter_error = str(exc)
            return list(self.runs)
        self.filter_error = ""
        runs = [run for run in self.runs if run_matches(run, fields, words)]
        present = [run for run in runs if self.sort_value(run) is not None]
        absent = [run for run in runs if self.sort_value(run) is None]
        return sorted(present, key=self.sort_value, reverse=self.descending) + absent

    def sort_value(self, run: Run):
        if self.sort_column in self.metric_keys:
            return self.metrics.get(run.id, {}).get(self.sort_column)
        value = row_label(run.config) if self.sort_column == "model" else getattr(run, self.sort_column, None)
        return value if isinstance(value, (int, float)) or value is None else str(value)

    def show(self) -> None:
        """Redraw the table from memory, keeping the cursor on the same run."""
        table = self.table
        current = self.current_run_id()
        table.clear(columns=True)
        for column in (*INFO_COLUMNS, *self.metric_keys, *TRAILING_COLUMNS):
            arrow = (" ↓" if self.descending else " ↑") if column == self.sort_column else ""
            table.add_column("" if column == "sel" else column + arrow, key=column)
        runs = self.visible_runs()
        for run in runs:
            values = self.metrics.get(run.id, {})
            table.add_row("●" if run.id in self.selected else " ", str(run.id),
                          Text.from_markup(status_markup(run.status)), shorten(row_label(run.config), 20),
                          shorten(run.dataset, 10), "" if run.seed is None else str(run.seed),
                          *(number(values.get(key)) for key in self.metric_keys), run.kind, run.experiment or "",
                          key=str(run.id))
        if current is not None and any(run.id == current for run in runs):
            table.move_cursor(row=table.get_row_index(str(current)))
        self.show_status(len(runs))

    def show_status(self, shown: int) -> None:
        parts = [f"[b]seqrec[/b] {shown}/{len(self.runs)} runs"]
        if self.filter_error:
            parts.append(f"[red]{self.filter_error}[/]")
        parts.append(f"sort {self.sort_column}")
        if self.selected:
            parts.append(f"{len(self.selected)} selected")
        self.query_one("#status", Static).update(" · ".join(parts))

    def current_run_id(self) -> int | None:
        table = self.table
        if table.row_count == 0:
            return None
        return int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(RunScreen(int(event.row_key.value)))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column != "sel":
            self.sort_by(column, not self.descending if column == self.sort_column else True)

    def sort_by(self, column: str, descending: bool) -> None:
        self.sort_column, self.descending = column, descending
        self.show()

    def action_next_sort(self) -> None:
        """Cycle the sort through id and the metric columns (best first)."""
        choices = ["id", *self.metric_keys]
        position = choices.index(self.sort_column) if self.sort_column in choices else -1
        self.sort_by(choices[(position + 1) % len(choices)], True)

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_focus_table(self) -> None:
        self.table.focus()

    def action_toggle_select(self) -> None:
        run_id = self.current_run_id()
        if run_id is not None:
            self.selected ^= {run_id}
            self.show()

    def action_compare(self) -> None:
        if len(self.selected) < 2:
            self.notify("select two or more runs with space, then press c", severity="warning")
            return
        self.app.push_screen(CompareScreen(sorted(self.selected)))

    def action_reports(self) -> None:
        fields, _ = parse_filter(self.query_one("#filter", Input).value) if not self.filter_error else ({}, [])
        self.app.push_screen(ReportScreen(experiment=fields.get("experiment")))
