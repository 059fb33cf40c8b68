"""SASRec (Kang & McAuley, 2018): causal self-attention over the item history."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.recsys.models.base import SequentialRecommender
from seqrec.recsys.configs import SASRecConfig


class SelfAttention(nn.Module):
    """Multi-head self-attention: one projection to queries, keys and values, then scaled dot-product attention."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """[batch, positions, hidden]; ``allowed`` is [batch, 1, queries, keys] (True = may attend)."""
        query, key, value = (part.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [batch, heads, L, head size]
                             for part in self.qkv(x).chunk(3, dim=-1))
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed,
                                                  dropout_p=self.dropout if self.training else 0.0)
        return self.out(attended.transpose(1, 2).flatten(2))


class TransformerBlock(nn.Module):
    """Attention and feed-forward, each with dropout on its output and a residual connection; LayerNorm before each
    (``post_norm=False``) or after each residual sum (``post_norm=True``)."""

    def __init__(self, hidden: int, heads: int, dropout: float, post_norm: bool = False):
        super().__init__()
        self.post_norm = post_norm
        self.attention_norm = nn.LayerNorm(hidden)
        self.attention = SelfAttention(hidden, heads, dropout)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden * 4), nn.GELU(), nn.Linear(hidden * 4, hidden))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = self.attention_norm(x + self.dropout(self.attention(x, allowed)))
            return self.ffn_norm(x + self.dropout(self.ffn(x)))
        x = x + self.dropout(self.attention(self.attention_norm(x), allowed))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


def attention_allowed(histories: torch.Tensor, causal: bool) -> torch.Tensor:
    """[batch, 1, L, L] boolean mask (True = may attend): real items, and only earlier ones when causal.

    Every position may attend to itself, so padding rows are never all-blocked (which would give NaN).
    """
    length = histories.shape[1]
    allowed = (histories != 0)[:, None, None, :].expand(-1, 1, length, -1)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=histories.device).tril()
    return allowed | torch.eye(length, dtype=torch.bool, device=histories.device)


class SelfAttentionEncoder(nn.Module):
    """Position embeddings, dropout and a stack of transformer blocks: SASRec's encoder, and BERT4Rec's without
    the causal mask. Post-norm (RecBole's layout) also normalises the input embeddings and ends with the last
    block's LayerNorm; pre-norm ends with a LayerNorm of its own."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        post_norm = config.norm == "post"
        self.positions = nn.Embedding(config.max_len, config.hidden)
        self.input_norm = nn.LayerNorm(config.hidden) if post_norm else nn.Identity()
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config.hidden, config.heads, config.dropout, post_norm)
                                    for _ in range(config.layers))
        self.final_norm = nn.Identity() if post_norm else nn.LayerNorm(config.hidden)
        for module in self.modules():  # small weights, as BERT and RecBole start: positions must not drown items
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, embedded: torch.Tensor, histories: torch.Tensor, causal: bool) -> torch.Tensor:
        """[batch, L, hidden]: the state at every position."""
        positions = torch.arange(histories.shape[1], device=histories.device)
        x = self.dropout(self.input_norm(embedded + self.positions(positions)))
        allowed = attention_allowed(histories, causal)
        for block in self.blocks:
            x = block(x, allowed)
        return self.final_norm(x)


class SASRec(SequentialRecommender):
    def __init__(self, num_items: int, config: SASRecConfig, frozen_items=None, num_users: int = 0):
        super().__init__(num_items, config, frozen_items)
        self.config = config
        self.encoder = SelfAttentionEncoder(config)

    def encode_positions(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        """Causal attention makes position t the state after the prefix ending at t: every prefix in one pass."""
        return self.encoder(self.items(histories), histories, causal=True)

    def encode(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        return self.encode_positions(users, histories)[:, -1]
