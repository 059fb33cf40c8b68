"""What the dashboard's screens share: the store they read, reloading when it changes, and small formatters."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen

from seqrec.store import Store

STATUS_STYLE = {"finished": "green", "running": "cyan", "failed": "red", "interrupted": "yellow"}


class StoreScreen(Screen):
    """A screen over the database; the app calls :meth:`reload` whenever the database changed."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    @property
    def store(self) -> Store:
        return self.app.store

    def reload(self) -> None:
        """Read the database again and redraw (screens that show data override it)."""


def status_markup(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def shorten(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"
