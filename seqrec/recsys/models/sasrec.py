"""SASRec (Kang & McAuley, 2018): causal self-attention over the item history."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqrec.recsys.models.base import SequentialRecommender
from seqrec.recsys.models.dropout import Dropout


@dataclass
class SASRecConfig:
    hidden: int = 128
    layers: int = 2
    heads: int = 2
    dropout: float = 0.3
    max_len: int = 10
    loss: str = "ce"


class TransformerBlock(nn.Module):
    """Pre-norm attention and feed-forward, each with a residual connection."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden)
        self.attention = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden * 4), nn.GELU(), Dropout(dropout),
                                 nn.Linear(hidden * 4, hidden), Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        normed = self.attention_norm(x)
        x = x + self.attention(normed, normed, normed, attn_mask=mask, need_weights=False)[0]
        return x + self.ffn(self.ffn_norm(x))


def attention_mask(histories: torch.Tensor, heads: int, causal: bool) -> torch.Tensor:
    """[batch * heads, L, L] boolean mask (True = blocked): padding keys, and later keys when causal.

    Every position may attend to itself, so padding rows never become all-blocked (which would give NaN).
    """
    length = histories.shape[1]
    blocked = (histories == 0).unsqueeze(1).expand(-1, length, -1)
    if causal:
        blocked = blocked | torch.triu(torch.ones(length, length, dtype=torch.bool, device=histories.device), 1)
    blocked = blocked & ~torch.eye(length, dtype=torch.bool, device=histories.device)
    return blocked.repeat_interleave(heads, dim=0)


class SelfAttentionEncoder(nn.Module):
    """Position embeddings, dropout and a stack of transformer blocks: SASRec's encoder, and BERT4Rec's without
    the causal mask."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.heads = config.heads
        self.positions = nn.Embedding(config.max_len, config.hidden)
        self.dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config.hidden, config.heads, config.dropout)
                                    for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.hidden)

    def forward(self, embedded: torch.Tensor, histories: torch.Tensor, causal: bool) -> torch.Tensor:
        positions = torch.arange(histories.shape[1], device=histories.device)
        x = self.dropout(embedded + self.positions(positions))
        mask = attention_mask(histories, self.heads, causal)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x)


class SASRec(SequentialRecommender):
    def __init__(self, num_items: int, config: SASRecConfig, frozen_items=None, num_users: int = 0):
        super().__init__(num_items, config.hidden, frozen_items, config.loss)
        self.config = config
        self.encoder = SelfAttentionEncoder(config)

    def encode(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.items(histories), histories, causal=True)[:, -1]
