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
    """Multi-head attention whose queries may be fewer than its keys (only the newest position, say)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(hidden, hidden)
        self.key_value = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [batch, heads, positions, head size]

    def project(self, queries: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Query, key and value heads; one product for all three when the queries are the keys (saves a pass over
        the input, forward and backward)."""
        if queries is keys:
            weight = torch.cat([self.query.weight, self.key_value.weight])
            bias = torch.cat([self.query.bias, self.key_value.bias])
            return tuple(map(self.split_heads, F.linear(keys, weight, bias).chunk(3, dim=-1)))
        key, value = self.key_value(keys).chunk(2, dim=-1)
        return self.split_heads(self.query(queries)), self.split_heads(key), self.split_heads(value)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        query, key, value = self.project(queries, keys)
        dropout_p = self.dropout if self.training else 0.0
        scale = query.shape[-1] ** -0.5
        if query.shape[-2] == 1:
            # One query per history (the newest position): a weighted sum over the keys. Batched products of
            # 1-row matrices cost several times more on CPUs, where each small matrix pays its own call.
            weights = ((query * key).sum(-1) * scale).masked_fill(~allowed[:, :, 0], float("-inf"))
            attended = (dropout(weights.softmax(-1), dropout_p)[..., None] * value).sum(-2, True)
        elif query.is_cpu:
            # Spelled out on CPUs, the weights laid out [batch, heads, keys, queries]: softmax over the keys then runs
            # along a strided axis that is vectorised across the queries, 4x faster than along a last axis of ~10
            # keys; and faster than SDPA's CPU kernels here, whose dropout would draw one random number per weight.
            weights = (key @ query.transpose(-1, -2) * scale).masked_fill(~allowed.transpose(-1, -2), float("-inf"))
            attended = dropout(weights.softmax(-2), dropout_p).transpose(-1, -2) @ value
        else:
            attended = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, dropout_p=dropout_p)
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
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        """``newest_only``: compute the output of the last position alone (it still attends to every position)."""
        keys = x if self.post_norm else self.attention_norm(x)
        queries = keys
        if newest_only:
            x, queries, allowed = x[:, -1:], keys[:, -1:], allowed[:, :, -1:]
        if self.post_norm:
            x = self.attention_norm(x + self.dropout(self.attention(queries, keys, allowed)))
            return self.ffn_norm(x + self.dropout(self.ffn(x)))
        x = x + self.dropout(self.attention(queries, keys, allowed))
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
        """[batch, L, hidden], or [batch, hidden] for the newest position alone (the last block then skips the
        queries, projections and feed-forward of every other position: the same result, a third less work)."""
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
