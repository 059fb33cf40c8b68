"""GRU4Rec (Hidasi et al., 2016): a recurrent network over the item history."""

from __future__ import annotations

import torch
from torch import nn

from seqrec.recsys.models.base import SequentialRecommender
from seqrec.recsys.configs import GRU4RecConfig


class GRU4Rec(SequentialRecommender):
    def __init__(self, num_items: int, config: GRU4RecConfig, frozen_items=None, num_users: int = 0):
        super().__init__(num_items, config, frozen_items)
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.hidden, config.hidden, num_layers=config.layers, batch_first=True)
        self.output = nn.Linear(config.hidden, config.hidden)

    def encode_positions(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        """The recurrence's output after item t is the state after the prefix ending at t: every prefix in one pass.

        The recurrence runs over the items first (each row rotated so its left padding goes to the end, where it
        follows every item): a state never depends on how much padding a history had.
        """
        length = histories.shape[1]
        padding = (histories == 0).sum(1, keepdim=True)
        steps = torch.arange(length, device=histories.device)
        items_first = histories.gather(1, (steps + padding) % length)
        states, _ = self.gru(self.dropout(self.items(items_first)))
        back = ((steps - padding) % length).unsqueeze(-1).expand(-1, -1, states.shape[-1])
        return self.output(states.gather(1, back))  # position t again holds the state after item t

    def encode(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        return self.encode_positions(users, histories)[:, -1]  # left padding: the newest item is last
