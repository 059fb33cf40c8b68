"""The run tracker: a run is opened as running and always closed as finished, failed or interrupted."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import threading
import traceback
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from accelerate.tracking import GeneralTracker

from seqrec.store.hashing import config_hash
from seqrec.store.heartbeat import beating
from seqrec.store.models import Artifact, Run, utcnow


class RunInterrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM so that a killed job closes its run as interrupted."""


class ActiveRun:
    """The handle a running job writes through: metrics, artifacts, its own folder."""

    def __init__(self, store, row: Run):
        self.store = store
        self.row = row
        self.id: int = row.id
        self.config: dict = row.config
        self.dir: Path = store.run_dir(row.id)
        self.dir.mkdir(parents=True, exist_ok=True)

    def log_metrics(self, values: dict[str, float], *, step: int | None = None, split: str = "valid") -> None:
        self.store.add_metrics(self.id, values, step=step, split=split)

    def log_artifact(self, path: Path | str, kind: str, meta: dict | None = None) -> Artifact:
        return self.store.add_artifact(self.id, Path(path), kind, meta)


@functools.cache
def code_version() -> str:
    """seqrec's version, plus the git commit when running from a checkout."""
    from seqrec import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit.stdout.strip()}" if commit.returncode == 0 else __version__


@contextmanager
def _sigterm_as_interrupt():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def tracked_run(store, kind: str, config: dict, *, experiment: str | None = None, seed: int | None = None,
                dataset: str | None = None, inputs: Iterable[int | Artifact] = (), resume: int | None = None):
    """``with tracked_run(...) as run``: running on entry; finished, failed (error kept) or interrupted on exit.
    While it runs, its worker (host, pid) beats into its row."""
    host, pid = socket.gethostname(), os.getpid()
    if resume is not None:
        row = store.reopen_run(resume, host=host, pid=pid)
    else:
        row = store.create_run(Run(kind=kind, experiment=experiment, status="running", config=config,
                                   config_hash=config_hash(config), seed=seed, dataset=dataset, host=host, pid=pid,
                                   heartbeat_at=utcnow(), code_version=code_version()))
        store.add_inputs(row.id, inputs)
    run = ActiveRun(store, row)
    with _sigterm_as_interrupt(), beating(lambda: store.beat_run(run.id), store.settings.heartbeat_s):
        try:
            yield run
        except KeyboardInterrupt:
            store.update_run(run.id, status="interrupted", error="interrupted")
            raise
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
            try:
                store.update_run(run.id, status="failed", error=message + "\n\n" + traceback.format_exc())
            except Exception:
                # A full or read-only disk refuses this write too. The run stays `running` and its heartbeat
                # stops, so a later `seqrec run` takes it over; the error worth showing is the first one.
                pass
            raise
        else:
            store.update_run(run.id, status="finished")


class SeqrecTracker(GeneralTracker):
    """Lets ``Accelerator(log_with=[SeqrecTracker(run)])`` write metrics into a seqrec run.

    Accelerate calls trackers on the main process only, so a multi-process job logs each metric once.
    ``accelerator.log(values, step, log_kwargs={"seqrec": {"split": "train"}})`` picks the split.
    """

    name = "seqrec"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, run: ActiveRun):
        super().__init__()
        self.run = run

    @property
    def tracker(self) -> ActiveRun:
        return self.run

    def store_init_configuration(self, values: dict) -> None:
        """The run's config is stored when the run opens; nothing more to record here."""

    def log(self, values: dict, step: int | None = None, split: str = "train", **kwargs) -> None:
        numbers = {key: float(value) for key, value in values.items() if isinstance(value, (int, float))}
        self.run.log_metrics(numbers, step=step, split=split)
