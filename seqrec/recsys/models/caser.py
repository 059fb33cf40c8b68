"""Caser (Tang & Wang, 2018): horizontal and vertical convolutions over the history's embedding 'image'."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.recsys.models.base import SequentialRecommender
from seqrec.recsys.configs import CaserConfig


class Caser(SequentialRecommender):
    """A window model: under the all-position objective each prefix is its own left-padded window (the base
    class's ``encode_positions``)."""

    def __init__(self, num_items: int, config: CaserConfig, frozen_items=None, num_users: int = 0):
        super().__init__(num_items, config, frozen_items)
        self.config = config
        length = config.max_len
        self.horizontal = nn.ModuleList(nn.Conv2d(1, config.horizontal_filters, (height, config.hidden))
                                        for height in range(1, length + 1))
        self.vertical = nn.Conv2d(1, config.vertical_filters, (length, 1))
        features = config.horizontal_filters * length + config.vertical_filters * config.hidden
        self.users = nn.Embedding(num_users + 1, config.hidden)
        self.fully_connected = nn.Linear(features, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(2 * config.hidden, config.hidden)

    def encode(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        image = self.items(histories).unsqueeze(1)  # [batch, 1, L, hidden]
        horizontal = [F.relu(conv(image)).squeeze(3).max(dim=2).values for conv in self.horizontal]
        vertical = self.vertical(image).flatten(1)
        z = F.relu(self.fully_connected(self.dropout(torch.cat([*horizontal, vertical], dim=1))))
        return self.output(torch.cat([z, self.users(users)], dim=1))
