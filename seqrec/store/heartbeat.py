"""A heartbeat: while a worker holds a run or a claim, a thread writes the moment into the database at intervals,
so that other workers can tell a worker that stopped (killed, its machine gone) from one that is busy."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager


@contextmanager
def beating(beat: Callable[[], None], every_s: float):
    """Call ``beat()`` every ``every_s`` seconds in a daemon thread until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                beat()
            except Exception:  # a database busy or away for a moment: the next beat tries again
                pass

    thread = threading.Thread(target=loop, name="seqrec-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
