"""GRU4Rec (Hidasi et al., 2016): a recurrent network over the item history."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqrec.recsys.models.base import SequentialRecommender
from seqrec.recsys.models.dropout import Dropout


@dataclass
class GRU4RecConfig:
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.3
    max_len: int = 10
    loss: str = "ce"


class GRU4Rec(SequentialRecommender):
    def __init__(self, num_items: int, config: GRU4RecConfig, frozen_items=None, num_users: int = 0):
        super().__init__(num_items, config.hidden, frozen_items, config.loss)
        self.config = config
        self.dropout = Dropout(config.dropout)
        self.gru = nn.GRU(config.hidden, config.hidden, num_layers=config.layers, batch_first=True)
        self.output = nn.Linear(config.hidden, config.hidden)

    def encode(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        # Left padding puts the newest item last, so the final output step is the user state.
        states, _ = self.gru(self.dropout(self.items(histories)))
        return self.output(states[:, -1])
