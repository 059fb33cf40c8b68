import math

import pytest
import torch

from seqrec.recsys.metrics import full_metrics, mask_seen, sampled_metrics, sampled_ranks, target_ranks


def test_ranks_and_metrics_on_a_hand_computed_case():
    scores = torch.tensor([[-math.inf, 0.9, 0.5, 0.7, 0.1],
                           [-math.inf, 0.1, 0.2, 0.3, 0.4]])
    targets = torch.tensor([3, 1])
    ranks = target_ranks(scores, targets)
    assert ranks.tolist() == [1, 3]
    values = full_metrics(ranks)
    assert values["recall@1"].tolist() == [0.0, 0.0]
    assert values["recall@5"].tolist() == [1.0, 1.0]
    assert values["ndcg@5"][0].item() == pytest.approx(1 / math.log2(3))
    assert values["ndcg@5"][1].item() == pytest.approx(1 / math.log2(5))
    assert values["mrr"].tolist() == pytest.approx([1 / 2, 1 / 4])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ranks_count_every_item_scored_at_or_above_the_target(dtype):
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 20, (64, 300), generator=generator).to(dtype)  # many ties
    scores[:, 0] = -math.inf
    scores[::3, 5:40] = -math.inf  # masked items
    targets = torch.randint(1, 300, (64,), generator=generator)
    expected = [int((row >= row[target]).sum()) - 1 for row, target in zip(scores, targets)]
    assert target_ranks(scores, targets).tolist() == expected


def test_a_catalogue_past_float32s_exact_counts_is_ranked_exactly():
    """2**24 + 1 items at or above the target: a float32 count would round it to 2**24."""
    scores = torch.zeros(1, 2**24 + 2)
    scores[0, 0] = -math.inf
    assert target_ranks(scores, torch.tensor([1])).tolist() == [2**24]


def test_ties_count_against_the_target():
    scores = torch.tensor([[-math.inf, 0.5, 0.5, 0.5]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [2]
    constant = torch.zeros(1, 100)
    constant[0, 0] = -math.inf
    assert full_metrics(target_ranks(constant, torch.tensor([7])))["recall@20"].item() == 0.0


def test_k_larger_than_the_catalogue_and_padding_never_ranked():
    scores = torch.tensor([[-math.inf, 0.1, 0.2]])
    values = full_metrics(target_ranks(scores, torch.tensor([1])))
    assert values["recall@20"].item() == 1.0 and values["recall@1"].item() == 0.0
    assert values["ndcg@20"].item() == pytest.approx(1 / math.log2(3))


def test_masking_seen_items_lifts_the_target_but_never_masks_it():
    scores = torch.tensor([[-math.inf, 0.9, 0.8, 0.7, 0.1]])
    target = torch.tensor([3])
    assert target_ranks(scores, target).tolist() == [2]
    masked = mask_seen(scores, torch.tensor([0, 0, 0]), torch.tensor([1, 2, 3]), target)
    assert target_ranks(masked, target).tolist() == [0]
    assert masked[0, 3].item() == pytest.approx(0.7)


def test_masking_is_per_row():
    scores = torch.tensor([[-math.inf, 0.9, 0.8, 0.7],
                           [-math.inf, 0.9, 0.8, 0.7]])
    targets = torch.tensor([3, 3])
    masked = mask_seen(scores, rows=torch.tensor([0, 1, 1]), items=torch.tensor([1, 1, 2]), targets=targets)
    assert target_ranks(masked, targets).tolist() == [1, 0]


def test_sampled_candidates_rank_the_positive_among_its_negatives():
    scores = torch.tensor([[-math.inf, 0.9, 0.8, 0.7, 0.1, 0.95]])
    candidates = torch.tensor([[2, 1, 4, 5]])  # positive 2 (0.8) vs 0.9, 0.1, 0.95
    ranks = sampled_ranks(scores, candidates)
    assert ranks.tolist() == [2]
    tied = torch.tensor([[-math.inf, 0.5, 0.5, 0.5, 0.1]])
    assert sampled_ranks(tied, torch.tensor([[2, 1, 3, 4]])).tolist() == [2]  # ties count against the positive
    values = sampled_metrics(ranks)
    assert set(values) == {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10"}
    assert values["hr@1"].item() == 0.0 and values["hr@5"].item() == 1.0
    assert values["ndcg@5"].item() == pytest.approx(0.5)
