"""The training loop every trainable thing shares: Accelerate on one CPU, one GPU or several processes.

Each epoch trains on shuffled batches (a seeded order per epoch), then every ``eval_every`` epochs the model is
evaluated on validation; the best weights are kept, a full checkpoint (model, optimizer, RNG states, loop state)
is written, and training stops after ``patience`` evaluations without improvement. ``resume`` continues from the
last checkpoint and reaches the same result an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset

from seqrec.progress import progress_bar
from seqrec.training.config import TrainConfig


@dataclass
class LoopState:
    """What a checkpoint must remember beside the tensors to continue exactly where it stopped."""

    epoch: int = 0  # epochs completed
    steps: int = 0  # optimizer steps taken
    best: float = -math.inf
    best_epoch: int = -1
    evaluations_without_improvement: int = 0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> "LoopState":
        return cls(**json.loads(path.read_text()))


def last_checkpoint(checkpoint: Path) -> Path | None:
    """The newest complete checkpoint: ``checkpoint``, or the one written next to it when the process stopped
    between putting the old one aside and moving the new one in (loop.json, written last, marks it complete)."""
    for folder in (checkpoint, checkpoint.with_name(checkpoint.name + ".partial")):
        if (folder / "loop.json").exists():
            return folder
    return None


def save_checkpoint(accelerator: Accelerator, state: LoopState, checkpoint: Path) -> None:
    """Write a full checkpoint beside the last one, then swap it in: a process killed while writing leaves the
    last complete checkpoint, never a mix of two epochs."""
    partial, old = (checkpoint.with_name(checkpoint.name + suffix) for suffix in (".partial", ".old"))
    if accelerator.is_main_process:  # made before any process writes its own files into it
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()  # every process has written its own files (its RNG states) into it
    if accelerator.is_main_process:
        state.save(partial / "loop.json")
        shutil.rmtree(old, ignore_errors=True)
        if checkpoint.exists():
            checkpoint.rename(old)
        partial.rename(checkpoint)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def fit(model: torch.nn.Module, train_set: Dataset, validate, config: TrainConfig, accelerator: Accelerator,
        run_dir: Path, seed: int, resume: bool = False, validate_first: bool = False,
        make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
        after_step: Callable[[int, torch.optim.Optimizer], None] | None = None) -> tuple[torch.nn.Module, LoopState]:
    """Train ``model`` (its forward returns the loss of a batch) with early stopping on
    ``validate(model, accelerator) -> metrics``; returns the best model and the loop's final state.

    ``validate_first`` logs the validation metrics of the untrained model as step 0 (where a fine-tuned LLM starts).
    ``make_optimizer(trainable parameters)`` replaces the default AdamW (``config.lr``, ``config.weight_decay``).
    ``after_step(step, optimizer)`` runs after every optimizer step, before the gradients are cleared, with the
    step's 0-based index (AdaLoRA's rank allocation reads the gradients there; a warm-up sets the next learning rate).
    A model whose loss follows a schedule over epochs (a distillation term switched off after E epochs) defines
    ``start_epoch(epoch)``; it is called before each epoch, resumed runs included.
    """
    set_seed(seed)
    checkpoint = run_dir / "checkpoint"
    best_weights = run_dir / "best.pt"
    # A dataset that hands out whole batches (batches.BatchIndexedTensors) brings its own pass-through collate.
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                        collate_fn=getattr(train_set, "collate", None),
                        generator=torch.Generator().manual_seed(seed))
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = make_optimizer(trainable) if make_optimizer is not None else \
        torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    state = LoopState()
    if resume and (found := last_checkpoint(checkpoint)) is not None:
        accelerator.load_state(str(found))
        state = LoopState.load(found / "loop.json")
    if validate_first and not resume:
        accelerator.log(validate(model, accelerator), step=0, log_kwargs={"seqrec": {"split": "valid"}})

    with progress_bar(info=True, disable=not accelerator.is_main_process) as bar:
        task = bar.add_task("training", total=config.epochs * len(loader), completed=state.epoch * len(loader),
                            info="")
        for epoch in range(state.epoch, config.epochs):
            loader.set_epoch(epoch)
            if hasattr(accelerator.unwrap_model(model), "start_epoch"):
                accelerator.unwrap_model(model).start_epoch(epoch)
            model.train()
            total, batches = torch.zeros((), device=accelerator.device), 0
            for batch in loader:
                with accelerator.accumulate(model):
                    loss = model(*batch)  # under the accelerator's autocast when mixed precision is on
                    accelerator.backward(loss)
                    optimizer.step()
                    if accelerator.sync_gradients:  # a real step, not an accumulation one
                        if after_step is not None:
                            after_step(state.steps, optimizer)
                        state.steps += 1
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
                    if accelerator.is_main_process:  # written whole or not at all: a kill may land mid-save
                        partial = best_weights.with_name(best_weights.name + ".partial")
                        torch.save(accelerator.unwrap_model(model).state_dict(), partial)
                        partial.replace(best_weights)
                else:
                    state.evaluations_without_improvement += 1
                save_checkpoint(accelerator, state, checkpoint)
                info += f"  {config.metric} {score:.4f} (best {state.best:.4f} @ {state.best_epoch})"
                if state.evaluations_without_improvement >= config.patience:
                    break
            bar.update(task, info=f"epoch {state.epoch}  {info}")

    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    if best_weights.exists():  # read onto the CPU (torch.load cannot map to a multi-CPU job's "cpu:0"), then copied
        model.load_state_dict(torch.load(best_weights, map_location="cpu", weights_only=True))
    return model, state
