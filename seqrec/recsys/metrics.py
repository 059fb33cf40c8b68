"""Ranking metrics from the rank of the target item, computed for a whole batch at once.

Ties are broken pessimistically: an item with the same score as the target counts as ranked above it, so a
model that gives every item the same score gets no credit.
"""

from __future__ import annotations

import torch

FULL_KS = (1, 5, 10, 20)
SAMPLED_HR_KS = (1, 5, 10)
SAMPLED_NDCG_KS = (5, 10)
FULL_METRICS = (*(f"recall@{k}" for k in FULL_KS), *(f"ndcg@{k}" for k in FULL_KS), "mrr")
SAMPLED_METRICS = (*(f"hr@{k}" for k in SAMPLED_HR_KS), *(f"ndcg@{k}" for k in SAMPLED_NDCG_KS))


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all scored items (pessimistic ties: an equal score ranks above)."""
    at_or_above = (scores >= scores.gather(1, targets[:, None])).sum(dim=1)
    return at_or_above.long() - 1  # minus the target itself


def mask_seen(scores: torch.Tensor, rows: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Exclude items the user already had from the ranking: ``(rows[i], items[i])`` are (batch row, seen item)
    pairs. A row's own target is never excluded, even when the user had it before."""
    keep = items != targets[rows]
    return scores.index_put((rows[keep], items[keep]), torch.tensor(float("-inf"), device=scores.device))


def ndcg_at(ranks: torch.Tensor, k: int) -> torch.Tensor:
    return torch.where(ranks < k, 1.0 / torch.log2(ranks.float() + 2.0), torch.zeros_like(ranks, dtype=torch.float))


def full_metrics(ranks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example values over the whole catalogue: recall@K (= HR@K with one target), NDCG@K, MRR."""
    values = {f"recall@{k}": (ranks < k).float() for k in FULL_KS}
    values.update({f"ndcg@{k}": ndcg_at(ranks, k) for k in FULL_KS})
    values["mrr"] = 1.0 / (ranks.float() + 1.0)
    return values


def sampled_metrics(ranks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example values among 1 positive + N sampled negatives (DELRec: HR@1/5/10, NDCG@5/10)."""
    values = {f"hr@{k}": (ranks < k).float() for k in SAMPLED_HR_KS}
    values.update({f"ndcg@{k}": ndcg_at(ranks, k) for k in SAMPLED_NDCG_KS})
    return values


def sampled_ranks(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Rank of the positive (column 0 of candidates) among its candidates (pessimistic ties)."""
    candidate_scores = scores.gather(1, candidates)
    return (candidate_scores[:, 1:] >= candidate_scores[:, :1]).sum(dim=1)

