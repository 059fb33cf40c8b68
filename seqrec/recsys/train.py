"""The shared training loop: Accelerate on one CPU, one GPU or several processes.

Each epoch trains on shuffled batches (a seeded order per epoch; on a CPU a recommender's batch is split across the
cores, ``shards.py``), then every ``eval_every`` epochs the model is evaluated on validation; the best weights are
kept, a full checkpoint (model, optimizer, RNG states, loop state) is written, and training stops after
``patience`` evaluations without improvement. ``resume`` continues from the last checkpoint and reaches the same
result an uninterrupted run would.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, DistributedType, set_seed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Dataset

from seqrec.recsys.allocator import keep_freed_memory
from seqrec.recsys.shards import CoreShards, shard_count
from seqrec.store.tracker import SeqrecTracker


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    eval_every: int = 1
    patience: int = 10
    metric: str = "ndcg@10"
    grad_accum: int = 1
    mixed_precision: str = "no"  # no | bf16 | fp16
    cpu_shards: int = 0  # split each CPU batch across this many threads (recsys/shards.py); 0: one per core


@dataclass
class LoopState:
    """What a checkpoint must remember beside the tensors to continue exactly where it stopped."""

    epoch: int = 0  # epochs completed
    best: float = -math.inf
    best_epoch: int = -1
    evaluations_without_improvement: int = 0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> "LoopState":
        return cls(**json.loads(path.read_text()))


def process_state() -> PartialState:
    """This process's place in the job; the first call forms the process group.

    Under a distributed launcher (``torchrun --nproc_per_node N``) on a machine without GPUs, Accelerate groups the
    processes (gloo) only when asked for CPUs: left alone, every process would train on its own and record a run.
    The group lives as long as the process: a job may train several seeds or steps (Accelerate's ``end_training``
    would close it after the first).
    """
    state = PartialState()
    if state.distributed_type == DistributedType.NO and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        PartialState._reset_state()
        state = PartialState(cpu=True)
    return state


def leave_together(accelerator: Accelerator) -> None:
    """End a job's collectives with a barrier. A process that exits right after an all-reduce of a Python tensor
    can be aborted: gloo's worker thread frees the tensor after Python let go of it, and needs the GIL to do so
    while the interpreter is shutting down. Waiting here lets it finish."""
    accelerator.wait_for_everyone()


def mark_absent(package: str) -> None:
    """If ``package`` is not installed, say so in ``sys.modules``: importlib's ``find_spec`` then answers None at once
    instead of walking sys.path every time it is asked."""
    if package not in sys.modules and importlib.util.find_spec(package) is None:
        sys.modules[package] = None


def make_accelerator(config: TrainConfig, run=None) -> Accelerator:
    keep_freed_memory()
    # Accelerate's optimizer wrapper asks whether the optional lomo_optim exists twice in every step(): a walk of
    # sys.path that cost about 0.1 ms of a 24 ms CPU SASRec step (benchmarks/README.md, stop 20).
    mark_absent("lomo_optim")
    process_state()
    # Accelerate keeps one state per process and refuses an Accelerator whose mixed precision differs from the
    # first one's (an experiments.toml step in bf16 after one in float32). Each training starts from its own config;
    # the process group (PartialState) is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum, mixed_precision=config.mixed_precision,
                              log_with=[SeqrecTracker(run)] if run is not None else None,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    if run is not None:
        accelerator.init_trackers("seqrec")
    return accelerator


def progress_bar(accelerator: Accelerator) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not accelerator.is_main_process,
                    transient=True)


def fit(model: torch.nn.Module, train_set: Dataset, validate, config: TrainConfig, accelerator: Accelerator,
        run_dir: Path, seed: int, resume: bool = False,
        validate_first: bool = False) -> tuple[torch.nn.Module, LoopState]:
    """Train with early stopping on ``validate(model, accelerator) -> metrics``; returns the best model.

    ``validate_first`` logs the validation metrics of the untrained model as step 0 (where a fine-tuned LLM starts).
    """
    set_seed(seed)
    checkpoint = run_dir / "checkpoint"
    best_weights = run_dir / "best.pt"
    # A dataset that hands out whole batches (batches.BatchIndexedTensors) brings its own pass-through collate.
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                        collate_fn=getattr(train_set, "collate", None),
                        generator=torch.Generator().manual_seed(seed))
    # fused: one kernel for the whole update instead of a dozen small ops per parameter (a twentieth of a CPU step)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    state = LoopState()
    if resume and (checkpoint / "loop.json").exists():
        accelerator.load_state(str(checkpoint))
        state = LoopState.load(checkpoint / "loop.json")
    if validate_first and not resume:
        accelerator.log(validate(model, accelerator), step=0, log_kwargs={"seqrec": {"split": "valid"}})

    shards = CoreShards(shard_count(config.cpu_shards, model, config.batch_size, accelerator))
    with progress_bar(accelerator) as bar, shards:
        description = "training" if shards.count == 1 else f"training ({shards.count} CPU shards)"
        task = bar.add_task(description, total=config.epochs * len(loader), completed=state.epoch * len(loader),
                            info="")
        for epoch in range(state.epoch, config.epochs):
            loader.set_epoch(epoch)
            model.train()
            total, batches = torch.zeros((), device=accelerator.device), 0
            with shards.threads_set():
                for batch in loader:
                    with accelerator.accumulate(model):
                        loss = shards.backward(model, batch, accelerator)
                        optimizer.step()
                        optimizer.zero_grad()
                    total += loss.detach()
                    batches += 1
                    bar.advance(task)
            mean_loss = float(accelerator.reduce(total, "mean")) / max(batches, 1)
            accelerator.log({"loss": mean_loss}, step=epoch + 1, log_kwargs={"seqrec": {"split": "train"}})
            state.epoch = epoch + 1
            info = f"loss {mean_loss:.4f}"

            if state.epoch % config.eval_every == 0 or state.epoch == config.epochs:
                metrics = validate(model, accelerator)
                accelerator.log(metrics, step=state.epoch, log_kwargs={"seqrec": {"split": "valid"}})
                score = metrics[config.metric]
                if score > state.best:
                    state.best, state.best_epoch, state.evaluations_without_improvement = score, state.epoch, 0
                    if accelerator.is_main_process:
                        torch.save(accelerator.unwrap_model(model).state_dict(), best_weights)
                else:
                    state.evaluations_without_improvement += 1
                accelerator.save_state(str(checkpoint))
                if accelerator.is_main_process:
                    state.save(checkpoint / "loop.json")
                accelerator.wait_for_everyone()
                info += f"  {config.metric} {score:.4f} (best {state.best:.4f} @ {state.best_epoch})"
                if state.evaluations_without_improvement >= config.patience:
                    break
            bar.update(task, info=f"epoch {state.epoch}  {info}")

    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    if best_weights.exists():  # read onto the CPU (torch.load cannot map to a multi-CPU job's "cpu:0"), then copied
        model.load_state_dict(torch.load(best_weights, map_location="cpu", weights_only=True))
    return model, state
