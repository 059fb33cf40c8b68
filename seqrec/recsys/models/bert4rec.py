"""BERT4Rec (Sun et al., 2019): bidirectional self-attention trained by predicting masked items."""

from __future__ import annotations

import torch
from torch import nn

from seqrec.recsys.models.base import SequentialRecommender, catalogue_cross_entropy
from seqrec.recsys.models.sasrec import SelfAttentionEncoder
from seqrec.recsys.configs import BERT4RecConfig


class BERT4Rec(SequentialRecommender):
    """Item id ``num_items + 1`` is the [mask] token, embedded by its own trainable vector.

    Training: each next-item example becomes a window (history without its oldest item, then the target);
    items are masked at random, the target always (as at inference), and predicted from both sides.
    Inference: the history shifted left by one with [mask] appended; the state at [mask] scores the items.
    """

    def __init__(self, num_items: int, config: BERT4RecConfig, frozen_items=None, num_users: int = 0):
        super().__init__(num_items, config, frozen_items)
        self.config = config
        self.mask_token = num_items + 1
        self.mask_embedding = nn.Parameter(torch.randn(config.hidden) * 0.02)
        self.encoder = SelfAttentionEncoder(config)

    def embed(self, windows: torch.Tensor) -> torch.Tensor:
        masked = windows == self.mask_token
        embedded = self.items(windows.masked_fill(masked, 0))
        return torch.where(masked.unsqueeze(-1), self.mask_embedding, embedded)

    def states(self, windows: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(windows), windows, causal=False)

    def encode(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        mask_column = torch.full_like(histories[:, :1], self.mask_token)
        return self.states(torch.cat([histories[:, 1:], mask_column], dim=1))[:, -1]

    def loss(self, users: torch.Tensor, histories: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        windows = torch.cat([histories[:, 1:], targets[:, None]], dim=1)
        chosen = (torch.rand(windows.shape, device=windows.device) < self.config.mask_prob) & (windows > 0)
        chosen[:, -1] = True
        states = self.states(windows.masked_fill(chosen, self.mask_token))[chosen]
        return catalogue_cross_entropy(states, self.output_items(), windows[chosen])
