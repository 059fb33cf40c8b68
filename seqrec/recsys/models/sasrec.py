"""SASRec (Kang & McAuley, 2018): causal self-attention over the item history."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.recsys.models.base import SequentialRecommender
from seqrec.recsys.models.dropout import Dropout, dropout


@dataclass
class SASRecConfig:
    hidden: int = 128
    layers: int = 2
    heads: int = 2
    dropout: float = 0.3
    max_len: int = 10
    loss: str = "ce"
    norm: str = "pre"  # pre: LayerNorm before each sub-layer, one at the end (SASRec's paper); post: RecBole's


class SelfAttention(nn.Module):
    """Multi-head self-attention over every position, or for the newest position's query alone."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(hidden, hidden)
        self.key_value = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [batch, heads, positions, head size]

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Query, key and value heads of every position, in one product (saves a pass over the input, forward and
        backward, against a query product and a key-value one)."""
        weight = torch.cat([self.query.weight, self.key_value.weight])
        bias = torch.cat([self.query.bias, self.key_value.bias])
        return tuple(map(self.split_heads, F.linear(x, weight, bias).chunk(3, dim=-1)))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        """[batch, positions, hidden], or [batch, 1, hidden] with ``newest_only``; ``allowed`` is [batch, 1,
        queries, keys] (True = may attend)."""
        if newest_only:
            return self.attend_newest(x, allowed[:, :, -1])[:, None]
        query, key, value = self.project(x)
        dropout_p = self.dropout if self.training else 0.0
        scale = query.shape[-1] ** -0.5
        if query.is_cpu:
            # Spelled out on CPUs, the weights laid out [batch, heads, keys, queries]: softmax over the keys then runs
            # along a strided axis that is vectorised across the queries, 4x faster than along a last axis of ~10
            # keys; and faster than SDPA's CPU kernels here, whose dropout would draw one random number per weight.
            weights = (key @ query.transpose(-1, -2) * scale).masked_fill(~allowed.transpose(-1, -2), float("-inf"))
            attended = dropout(weights.softmax(-2), dropout_p).transpose(-1, -2) @ value
        else:
            attended = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, dropout_p=dropout_p)
        return self.out(attended.transpose(1, 2).flatten(2))

    def attend_newest(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """[batch, hidden]: the newest position's query alone, without projecting the keys and values.

        Per head, q . (W_k x_j + b_k) = (W_k^T q) . x_j + q . b_k, and q . b_k is the same for every position, so
        softmax ignores it; and sum_j a_j (W_v x_j + b_v) = W_v (sum_j a_j x_j) + b_v sum_j a_j (the weights sum to 1
        but for dropout). So the query is mapped into the inputs' space and the values are projected after the
        weighted sum: one projection per history instead of one per position. Measured against projecting every
        position: 10 positions, a quarter to a third less time forward and backward (128-256 histories) and half
        the time forward (1,024); 50 positions, a third of the time forward and backward.
        """
        heads, hidden = self.heads, x.shape[-1]
        size = hidden // heads
        key_weight, value_weight = self.key_value.weight.view(2, heads, size, hidden).unbind(0)
        value_bias = self.key_value.bias.view(2, heads, size)[1]
        query = torch.einsum("bhs,hsi->bhi", self.query(x[:, -1]).view(-1, heads, size), key_weight)
        weights = (query @ x.transpose(1, 2) * size ** -0.5).masked_fill(~allowed, float("-inf"))
        weights = dropout(weights.softmax(-1), self.dropout if self.training else 0.0)  # [batch, heads, positions]
        values = torch.einsum("bhi,hsi->bhs", weights @ x, value_weight) + weights.sum(-1, keepdim=True) * value_bias
        return self.out(values.flatten(1))


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
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        """``newest_only``: compute the output of the last position alone (it still attends to every position)."""
        attended = self.attention(x if self.post_norm else self.attention_norm(x), allowed, newest_only)
        if newest_only:
            x = x[:, -1:]
        if self.post_norm:
            x = self.attention_norm(x + self.dropout(attended))
            return self.ffn_norm(x + self.dropout(self.ffn(x)))
        x = x + self.dropout(attended)
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
        self.dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config.hidden, config.heads, config.dropout, post_norm)
                                    for _ in range(config.layers))
        self.final_norm = nn.Identity() if post_norm else nn.LayerNorm(config.hidden)
        for module in self.modules():  # small weights, as BERT and RecBole start: positions must not drown items
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, embedded: torch.Tensor, histories: torch.Tensor, causal: bool,
                newest_only: bool = False) -> torch.Tensor:
        """[batch, L, hidden], or [batch, hidden] for the newest position alone (the last block then computes the
        attention and feed-forward of that position only, without projecting the others: the same result, about
        45% less work for two blocks of 10 positions)."""
        positions = torch.arange(histories.shape[1], device=histories.device)
        x = self.dropout(self.input_norm(embedded + self.positions(positions)))
        allowed = attention_allowed(histories, causal)
        for depth, block in enumerate(self.blocks, start=1):
            x = block(x, allowed, newest_only=newest_only and depth == len(self.blocks))
        x = self.final_norm(x)
        return x[:, -1] if newest_only else x


class SASRec(SequentialRecommender):
    def __init__(self, num_items: int, config: SASRecConfig, frozen_items=None, num_users: int = 0):
        super().__init__(num_items, config.hidden, frozen_items, config.loss)
        self.config = config
        self.encoder = SelfAttentionEncoder(config)

    def encode(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.items(histories), histories, causal=True, newest_only=True)
