"""Progress bars for long work, on stderr (stdout stays for results).

On a terminal rich draws a bar that disappears when done. Elsewhere (output sent to a log file, ``nohup``, CI) rich
draws nothing at all, so there a task prints a plain line every minute, and a last line if it ran that long: a
study left running in the background still shows how far it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

LINE_EVERY_S = 60.0


class ProgressBar(Progress):
    """rich's transient bar on a terminal; off a terminal, a plain line per task every ``every`` seconds."""

    def __init__(self, *columns, disable: bool = False, transfer: bool = False, every: float = LINE_EVERY_S):
        console = Console(stderr=True)
        self.plain = not disable and not console.is_terminal
        # off a terminal rich's own display is switched off (it would print only a stray newline); tasks still count
        super().__init__(*columns, console=console, transient=True, disable=disable or self.plain)
        self.transfer, self.every = transfer, every
        self.last_line: dict[TaskID, float] = {}

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self.line_if_due(task_id)

    def update(self, task_id: TaskID, **changes) -> None:
        super().update(task_id, **changes)
        self.line_if_due(task_id)

    def stop(self) -> None:
        for task in self.tasks if self.plain else ():
            if self.last_line.pop(task.id, None) is not None:  # a last line, for a task long enough to have had one
                print(plain_line(task, self.transfer), file=sys.stderr, flush=True)
        super().stop()

    def line_if_due(self, task_id: TaskID) -> None:
        if not self.plain:
            return
        task = self._tasks[task_id]
        now = self.get_time()
        since = self.last_line.get(task_id, now if task.start_time is None else task.start_time)
        if now - since >= self.every:
            self.last_line[task_id] = now
            print(plain_line(task, self.transfer), file=sys.stderr, flush=True)


def plain_line(task: Task, transfer: bool = False) -> str:
    """``re-ranking 250 users: 128/250 (51%), 2m59s so far, about 2m51s left``."""
    scale, unit, digits = (1e6, " MB", ".1f") if transfer else (1, "", ".0f")
    done = f"{task.completed / scale:,{digits}}"
    done += f"/{task.total / scale:,{digits}}{unit}" if task.total else unit
    share = f" ({100 * task.completed / task.total:.0f}%)" if task.total else ""
    elapsed = task.elapsed or 0.0
    line = f"{task.description}: {done}{share}, {duration(elapsed)} so far"
    if task.finished:
        line += ", done"
    elif task.total and task.completed > 0:
        # the mean rate so far: rich's own estimate looks back 30 s, shorter than the gap between these lines
        line += f", about {duration(elapsed * (task.total - task.completed) / task.completed)} left"
    info = task.fields.get("info")
    return f"{line}  {info}" if info else line


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_bar(*, info: bool = False, transfer: bool = False, disable: bool = False) -> ProgressBar:
    """The project's bar: description, bar, done/total (bytes and speed for a transfer), time left; ``info`` adds
    the task's ``info`` field (training's latest validation metrics)."""
    counts = (DownloadColumn(), TransferSpeedColumn()) if transfer else (MofNCompleteColumn(),)
    extra = (TextColumn("{task.fields[info]}"),) if info else ()
    return ProgressBar(TextColumn("{task.description}"), BarColumn(), *counts, *extra, TimeRemainingColumn(),
                       disable=disable, transfer=transfer)


@contextmanager
def counting(description: str, total: float) -> Iterator[Callable[[float], None]]:
    """One task's bar; the context yields ``advance(count)`` for the work that counts it."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        yield lambda count: bar.advance(task, count)
