"""Tensors for training and evaluation, built once per dataset with numpy (no per-user Python work per batch).

Histories are left-padded with item 0 to ``max_len``: the most recent item is always the last column.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from seqrec.data.prepared import PreparedData


def left_pad(sequences: list, max_len: int) -> np.ndarray:
    """The last ``max_len`` items of each sequence, right-aligned in a zero matrix."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tail = np.asarray(sequence, dtype=np.int64)[-max_len:]
        if len(tail):
            out[row, -len(tail):] = tail
    return out


class BatchIndexedTensors(TensorDataset):
    """A TensorDataset the DataLoader indexes a whole batch at a time (``__getitems__``): one gather per tensor
    instead of one small tensor per example and a stack, because per-example indexing is a visible share of a small
    model's training step on a CPU. The indices go through numpy and ``index_select``, the cheaper paths for a list
    of ints and a gather."""

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.from_numpy(np.fromiter(indices, dtype=np.int64, count=len(indices)))
        return [tensor.index_select(0, index) for tensor in self.tensors]

    @staticmethod
    def collate(batch: list[torch.Tensor]) -> list[torch.Tensor]:
        return batch  # already a batch


def next_item_examples(data: PreparedData, max_len: int) -> BatchIndexedTensors:
    """RecBole-style augmentation: every prefix of a training sequence predicts its next item.

    Returns (user, history [max_len], target) for all positions t >= 1 of every training sequence.
    """
    users, histories, targets = [], [], []
    for user, items in zip(data.train["user"], data.train["items"]):
        items = np.asarray(items, dtype=np.int64)
        for t in range(1, len(items)):
            users.append(user)
            histories.append(items[max(0, t - max_len):t])
            targets.append(items[t])
    return BatchIndexedTensors(torch.as_tensor(np.asarray(users, dtype=np.int64)),
                               torch.from_numpy(left_pad(histories, max_len)),
                               torch.as_tensor(np.asarray(targets, dtype=np.int64)))


def sequence_examples(data: PreparedData, max_len: int) -> BatchIndexedTensors:
    """Each training sequence once, for a loss on every position: (user, inputs [max_len], targets [max_len]),
    where targets[t] is the item after inputs[t] and 0 marks padding.

    A sequence longer than ``max_len + 1`` is cut into consecutive windows from its newest end, so that every
    transition is a target exactly once per epoch; a window's first positions then see only that window.
    """
    users, inputs, targets = [], [], []
    for user, items in zip(data.train["user"], data.train["items"]):
        items = np.asarray(items, dtype=np.int64)
        for end in range(len(items), 1, -max_len):  # targets are items[start + 1 : end]
            start = max(0, end - max_len - 1)
            users.append(user)
            inputs.append(items[start:end - 1])
            targets.append(items[start + 1:end])
    return BatchIndexedTensors(torch.as_tensor(np.asarray(users, dtype=np.int64)),
                               torch.from_numpy(left_pad(inputs, max_len)), torch.from_numpy(left_pad(targets, max_len)))


def seen_items(data: PreparedData, split: str) -> list[np.ndarray]:
    """Per evaluation example, every item the user interacted with before its target (for optional masking)."""
    examples = getattr(data, split)
    train_items = dict(zip(data.train["user"], data.train["items"]))
    earlier_targets: dict[int, list[int]] = {}
    if split == "test":
        for user, target in zip(data.valid["user"], data.valid["target"]):
            earlier_targets.setdefault(int(user), []).append(int(target))
    seen = []
    for user, history in zip(examples["user"], examples["history"]):
        items = np.concatenate([np.asarray(train_items.get(user, []), dtype=np.int64),
                                np.asarray(earlier_targets.get(int(user), []), dtype=np.int64),
                                np.asarray(history, dtype=np.int64)])
        seen.append(np.unique(items))
    return seen


def evaluation_examples(data: PreparedData, split: str, max_len: int, histories: list | None = None) -> TensorDataset:
    """(index, user, history [max_len], target) for the validation or test split; ``histories`` may replace the
    stored ones (noisy inputs)."""
    examples = getattr(data, split)
    histories = list(examples["history"]) if histories is None else histories
    return TensorDataset(torch.arange(len(examples)), torch.from_numpy(examples["user"].to_numpy(np.int64, copy=True)),
                         torch.from_numpy(left_pad(histories, max_len)),
                         torch.from_numpy(examples["target"].to_numpy(np.int64, copy=True)))
