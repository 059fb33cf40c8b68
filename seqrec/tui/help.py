"""The key help panel: the keys of the screen underneath, read from its live bindings so it never goes stale."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

TIPS = (
    "Enter opens the run under the cursor; a click on a column header sorts by it (again: reverse).\n"
    "Filter: experiment=X kind=train status=finished dataset=ml-100k and free words; keys may be abbreviated.\n"
    "The dashboard only reads the database and reloads when a run writes."
)


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def __init__(self, below: Screen):
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        keys = Table(box=None, show_header=False, pad_edge=False)
        keys.add_column(style="bold cyan")
        keys.add_column()
        for active in self.below.active_bindings.values():
            if active.binding.show:
                keys.add_row(self.app.get_key_display(active.binding), active.binding.description)
        with VerticalScroll(id="help"):
            yield Static("[b]keys[/b] (escape or ? closes)")
            yield Static(keys)
            yield Static(TIPS, classes="tips")
