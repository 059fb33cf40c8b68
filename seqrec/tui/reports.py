"""The report tables (`seqrec report`) inside the dashboard, recomputed whenever the database changes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from seqrec.errors import SeqrecError
from seqrec.report import TABLES, report_table
from seqrec.report.render import RICH, cell_text
from seqrec.tui.base import StoreScreen


class ReportScreen(StoreScreen):
    BINDINGS = [
        *(Binding(str(number), f"show('{kind}')", kind) for number, kind in enumerate(TABLES, start=1)),
        Binding("p", "toggle_paper", "Paper"),
    ]

    def __init__(self, experiment: str | None = None):
        super().__init__()
        self.experiment = experiment
        self.kind = next(iter(TABLES))
        self.paper = False

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield DataTable(id="report", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="notes"):
            yield Static(id="footnotes")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        data = self.query_one("#report", DataTable)
        data.clear(columns=True)
        heading = (f"[b]report {self.kind}[/b] · experiment {self.experiment or 'all'} · "
                   f"paper {'on' if self.paper else 'off'}")
        try:
            table = report_table(self.kind, experiment=self.experiment, paper=self.paper, store=self.store)
        except SeqrecError as exc:
            self.query_one("#title", Static).update(heading)
            self.query_one("#footnotes", Static).update(Text(str(exc), style="yellow"))
            return
        self.query_one("#title", Static).update(f"{heading} · {table.title}")
        data.add_column("row", key="row")
        for index, column in enumerate(table.columns):
            data.add_column(f"{column.group} {column.metric_label}", key=str(index))
        for row in table.rows:
            label = Text(row.label, style="italic dim" if row.published else "")
            data.add_row(label, *(Text.from_markup(cell_text(cell, RICH)) for cell in row.cells))
        self.query_one("#footnotes", Static).update(Text("\n".join(table.footnotes), style="dim"))

    def action_show(self, kind: str) -> None:
        self.kind = kind
        self.reload()

    def action_toggle_paper(self) -> None:
        self.paper = not self.paper
        self.reload()
