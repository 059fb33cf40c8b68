"""Accelerate setup shared by every trainer: the process group, and one Accelerator per training."""

from __future__ import annotations

import logging
import os
import sys

import torch.distributed as dist
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, DistributedType

from seqrec.store.tracker import SeqrecTracker


def process_state() -> PartialState:
    """This process's place in the job; the first call forms the process group.

    Under a distributed launcher (``torchrun --nproc_per_node N``) on a machine without GPUs, Accelerate groups the
    processes (gloo) only when asked for CPUs: left alone, every process would train on its own and record a run.
    The group lives as long as the process: a job may train several seeds or steps (Accelerate's ``end_training``
    would close it after the first); `leave_job` closes it when the process exits.
    """
    state = PartialState()
    if state.distributed_type == DistributedType.NO and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        PartialState._reset_state()
        state = PartialState(cpu=True)
    return state


def leave_job(code: int | str | None) -> None:
    """End a process of a distributed job: close the process group, flush, and exit with ``code`` at once.

    The interpreter's own shutdown is skipped on purpose. After it, C++ destructors free gloo's and the store's
    worker threads, and one still running aborts the process ("terminate called without an active exception"), so
    a job whose work is done and recorded could fail at random; nothing of seqrec's is left to run by then.
    A process that failed leaves without waiting (the launcher stops the others). Outside a process group this is
    plain ``sys.exit``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        sys.exit(code)
    if not code:
        dist.barrier()
        dist.destroy_process_group()
    if isinstance(code, str):
        print(code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def make_accelerator(grad_accum: int = 1, mixed_precision: str = "no", run=None) -> Accelerator:
    """An Accelerator logging to ``run`` (on the main process), with a seedable sampler so a seed fixes the order."""
    process_state()
    # Accelerate keeps one state per process and refuses an Accelerator whose mixed precision differs from the
    # first one's (an experiments.toml step in bf16 after one in float32); the process group is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(gradient_accumulation_steps=grad_accum, mixed_precision=mixed_precision,
                              log_with=[SeqrecTracker(run)] if run is not None else None,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    if run is not None:
        accelerator.init_trackers("seqrec")
    return accelerator


def process_shard(count: int, accelerator: Accelerator) -> tuple[int, int]:
    """The contiguous ``[start, end)`` share of ``count`` examples this process evaluates."""
    return (count * accelerator.process_index // accelerator.num_processes,
            count * (accelerator.process_index + 1) // accelerator.num_processes)
