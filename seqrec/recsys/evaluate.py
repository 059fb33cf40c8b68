"""Evaluation of a recommender on validation or test examples: full ranking or sampled candidates.

Runs batched on the accelerator's device; with several processes each scores its shard of the examples and
the metric sums are added up, so every process returns the same metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqrec.data.batches import evaluation_examples, seen_items
from seqrec.data.noise import apply_deletion_noise, parse_noise
from seqrec.data.prepared import PreparedData
from seqrec.errors import SeqrecError
from seqrec.recsys.metrics import full_metrics, mask_seen, sampled_metrics, sampled_ranks, target_ranks
from seqrec.training.accelerator import process_shard


def parse_protocol(protocol: str) -> int | None:
    """``full`` -> None; ``sampled:N`` -> N negatives per positive."""
    if protocol == "full":
        return None
    kind, _, count = protocol.partition(":")
    if kind == "sampled" and count.isdigit() and int(count) > 0:
        return int(count)
    raise SeqrecError(f"unknown evaluation protocol {protocol!r}; use full or sampled:N (e.g. sampled:14)")


def sample_candidates(data: PreparedData, split: str, negatives: int, seed: int) -> np.ndarray:
    """[examples, 1 + negatives]: the target, then items drawn uniformly from those the user never had."""
    examples = getattr(data, split)
    seen = seen_items(data, split)
    rng = np.random.default_rng(seed)
    rows = np.zeros((len(examples), 1 + negatives), dtype=np.int64)
    for row, (target, had) in enumerate(zip(examples["target"], seen)):
        excluded = set(had.tolist()) | {int(target)}
        if data.num_items - len(excluded) < negatives:
            raise SeqrecError(f"{data.name}: a user has too few unseen items for {negatives} negatives")
        chosen: list[int] = []
        while len(chosen) < negatives:
            for item in rng.integers(1, data.num_items + 1, size=2 * negatives):
                if int(item) not in excluded:
                    excluded.add(int(item))
                    chosen.append(int(item))
                    if len(chosen) == negatives:
                        break
        rows[row] = [int(target), *chosen]
    return rows


def stored_candidates(data: PreparedData, folder: Path, split: str, negatives: int, seed: int) -> np.ndarray:
    """Candidate sets are saved beside the dataset, so that every method (LLM ones too) ranks the same sets."""
    path = folder / f"candidates-{split}-{negatives}-seed{seed}.parquet"
    if path.exists():
        return np.stack(pd.read_parquet(path)["candidates"].to_numpy())
    rows = sample_candidates(data, split, negatives, seed)
    examples = getattr(data, split)
    frame = pd.DataFrame({"user": examples["user"].to_numpy(), "candidates": list(rows)})
    temporary = path.with_suffix(".tmp")
    frame.to_parquet(temporary, index=False)
    temporary.rename(path)
    return rows


class Evaluator:
    """Metrics of one split under one protocol, optionally with noisy histories and masked seen items.

    Everything is tensors prepared once; ``evaluate`` slices them into batches, so a pass costs the model's
    forward and a few batched tensor operations. With several processes each takes a contiguous shard and the
    metric sums are added up across processes, so every process returns the same means.
    """

    def __init__(self, data: PreparedData, split: str, *, protocol: str = "full", noise: str | None = None,
                 data_folder: Path, seed: int = 0, mask_seen_items: bool = False, batch_size: int = 1024):
        self.negatives = parse_protocol(protocol)
        examples = getattr(data, split)
        noise_spec = parse_noise(noise)
        histories = None
        if noise_spec is not None:
            histories = list(apply_deletion_noise(examples, rate=noise_spec[1], seed=seed)["history"])
        _, self.users, self.histories, self.targets = evaluation_examples(data, split, data.max_len, histories).tensors
        self.seen = None
        if mask_seen_items:  # ragged: every example's seen items end to end, and where each example's run starts
            seen = seen_items(data, split)
            self.seen = (torch.from_numpy(np.concatenate(seen)),
                         torch.as_tensor(np.cumsum([0] + [len(items) for items in seen]), dtype=torch.long))
        self.candidates = None
        if self.negatives is not None:
            self.candidates = torch.from_numpy(stored_candidates(data, data_folder, split, self.negatives, seed))
        self.batch_size = batch_size

    def seen_in(self, start: int, end: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch row, item) pairs of every seen item of examples ``start:end``."""
        items, offsets = self.seen
        lengths = offsets[start + 1:end + 1] - offsets[start:end]
        rows = torch.repeat_interleave(torch.arange(end - start), lengths)
        return rows.to(device), items[offsets[start]:offsets[end]].to(device)

    def evaluate(self, model, accelerator) -> dict[str, float]:
        model = accelerator.unwrap_model(model)
        was_training = model.training
        model.eval()
        count = len(self.targets)
        shard_start, shard_end = process_shard(count, accelerator)
        device = accelerator.device
        ranks = [torch.zeros(0, dtype=torch.long, device=device)]  # an empty shard still reports every metric
        # The training's mixed precision (Accelerate's autocast) applies here too; scores() keeps the scores float32.
        with torch.inference_mode(), accelerator.autocast():
            for start in range(shard_start, shard_end, self.batch_size):
                end = min(start + self.batch_size, shard_end)
                targets = self.targets[start:end].to(device)
                scores = model.scores(self.users[start:end].to(device), self.histories[start:end].to(device))
                if self.seen is not None:
                    scores = mask_seen(scores, *self.seen_in(start, end, device), targets)
                if self.candidates is None:
                    ranks.append(target_ranks(scores, targets))
                else:
                    ranks.append(sampled_ranks(scores, self.candidates[start:end].to(device)))
            values = (full_metrics if self.candidates is None else sampled_metrics)(torch.cat(ranks))
            sums = accelerator.reduce(torch.stack([value.sum() for value in values.values()]), reduction="sum")
        model.train(was_training)
        return {key: float(total) / count for key, total in zip(values, sums.tolist())}
