"""`seqrec dashboard`: a Textual app over the experiment database. It only reads, and polls for changes."""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from seqrec.errors import SeqrecError
from seqrec.store import Store, open_store
from seqrec.tui.base import StoreScreen
from seqrec.tui.help import HelpScreen
from seqrec.tui.runs import RunsScreen


class SeqrecDashboard(App):
    TITLE = "seqrec dashboard"
    ENABLE_COMMAND_PALETTE = False  # its footer slot is worth more to the keys at 80 columns
    CSS = """
    #filter { dock: top; margin: 0 0 0 0; }
    #status, #title { height: 1; padding: 0 1; background: $boost; }
    DataTable { height: 1fr; }
    #notes { height: auto; max-height: 6; padding: 0 1; }
    HelpScreen { align: center middle; }
    #help { width: 76; height: auto; max-height: 20; border: round $accent; padding: 0 1; background: $surface; }
    .tips { color: $text-muted; margin-top: 1; }
    """
    BINDINGS = [
        Binding("question_mark", "help", "Keys"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, store: Store | None = None, experiment: str | None = None, refresh: float = 2.0):
        super().__init__()
        self.store = store or open_store()
        self.initial_filter = f"experiment={experiment}" if experiment else ""
        self.refresh_seconds = refresh
        self.marker: tuple | None = None

    def get_default_screen(self) -> RunsScreen:
        return RunsScreen(self.initial_filter)

    def on_mount(self) -> None:
        self.marker = self.store.change_marker()
        if self.refresh_seconds > 0:
            self.set_interval(self.refresh_seconds, self.poll)

    def poll(self) -> None:
        """Reload every open screen when a run, metric or artifact was written since the last look."""
        marker = self.store.change_marker()
        if marker != self.marker:
            self.marker = marker
            for screen in self.screen_stack:
                if isinstance(screen, StoreScreen):
                    try:
                        screen.reload()
                    except SeqrecError as exc:  # e.g. the run on screen was deleted meanwhile
                        self.notify(str(exc), severity="error")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))
