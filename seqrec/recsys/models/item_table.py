"""Item representations: trainable ID embeddings, or a frozen precomputed matrix behind a trainable adapter.

The frozen variant is the LLM2Rec evaluation protocol: text or LLM item embeddings stay fixed, and only a linear
adapter (plus the recommender) learns.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class IdItemTable(nn.Module):
    def __init__(self, num_items: int, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(num_items + 1, hidden, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=0.02)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def all_items(self) -> torch.Tensor:
        """[num_items + 1, hidden]; row 0 is padding."""
        return self.embedding.weight

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.embedding(items)


class FrozenItemTable(nn.Module):
    def __init__(self, matrix: np.ndarray, hidden: int):
        super().__init__()
        self.register_buffer("frozen", torch.as_tensor(np.asarray(matrix, dtype=np.float32)))
        self.adapter = nn.Linear(self.frozen.shape[1], hidden)

    def all_items(self) -> torch.Tensor:
        return self.adapter(self.frozen)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.frozen[items])


def item_table(num_items: int, hidden: int, frozen: np.ndarray | None = None) -> nn.Module:
    return IdItemTable(num_items, hidden) if frozen is None else FrozenItemTable(frozen, hidden)
