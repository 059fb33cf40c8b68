"""The run skeleton every trainer shares: open the run (main process) -> its folder -> accelerator -> seed -> the
trainer's own work (fit, artifacts, final metrics) -> every process leaves together."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from seqrec.settings import get_settings
from seqrec.store import Artifact, open_store
from seqrec.training.accelerator import make_accelerator, process_state


@dataclass
class TrainingRun:
    """What a trainer works with: the tracked run (None on processes other than the main one), its folder and
    the accelerator that logs to it."""

    run: object | None
    dir: Path
    accelerator: Accelerator

    @property
    def id(self) -> int | None:
        return self.run.id if self.run is not None else None

    def log_artifact(self, path: Path, kind: str, meta: dict | None = None) -> None:
        if self.run is not None:
            self.run.log_artifact(path, kind=kind, meta=meta)


def job_config(config: dict) -> dict:
    """The config with this job's process count: each process takes a batch of ``batch_size`` (Accelerate's
    convention), so a job of N processes updates on N times as many examples as a one-process run."""
    config = {key: value for key, value in config.items() if key != "processes"}
    processes = process_state().num_processes
    if processes > 1:
        config["processes"] = processes
    return config


@contextmanager
def training_run(kind: str, config: dict, *, seed: int, dataset: str | None, experiment: str | None = None,
                 inputs: Iterable[int | Artifact] = (), resume: int | None = None, grad_accum: int = 1,
                 mixed_precision: str = "no") -> Iterator[TrainingRun]:
    """Open a tracked run of ``kind`` on the main process; every process learns its id and folder, gets an
    accelerator logging to it, and starts from ``seed``. The run ends finished, failed or interrupted."""
    state = process_state()
    context = open_store().start_run(kind, job_config(config), experiment=experiment, seed=seed, dataset=dataset,
                                     inputs=list(inputs) if resume is None else [], resume=resume) \
        if state.is_main_process else nullcontext(None)
    with context as run:
        run_id = broadcast_object_list([run.id if run is not None else None])[0]
        run_dir = get_settings().runs_dir / str(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        accelerator = make_accelerator(grad_accum, mixed_precision, run)
        torch.manual_seed(seed)
        yield TrainingRun(run, run_dir, accelerator)
