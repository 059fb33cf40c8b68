"""The Evaluator on the walk dataset: sampled candidate sets, stored candidates, noise and seen-item masking."""

from pathlib import Path

import pytest
import torch

from seqrec.data.batches import seen_items
from seqrec.data.prepare import get_dataset, load_dataset
from seqrec.recsys import evaluate as evaluate_module
from seqrec.recsys.evaluate import Evaluator, sample_candidates, stored_candidates
from seqrec.training.accelerator import make_accelerator


def test_sampled_negatives_are_unseen_distinct_and_exclude_the_target(walk):
    data = load_dataset("walk")
    rows = sample_candidates(data, "test", 5, seed=0)
    assert (rows[:, 0] == data.test["target"].to_numpy()).all()
    for row, history in zip(rows, seen_items(data, "test")):
        negatives = set(row[1:].tolist())
        assert len(negatives) == 5 and row[0] not in negatives and not negatives & set(history.tolist())
        assert all(1 <= item <= data.num_items for item in negatives)


def test_stored_candidates_are_read_back_not_drawn_again(walk, monkeypatch):
    data = load_dataset("walk")
    folder = Path(get_dataset("walk").path)
    first = stored_candidates(data, folder, "valid", 5, seed=3)

    def no_drawing(*args, **kwargs):
        raise AssertionError("candidate sets were drawn again instead of read from the stored file")

    monkeypatch.setattr(evaluate_module, "sample_candidates", no_drawing)
    assert (stored_candidates(data, folder, "valid", 5, seed=3) == first).all()


class SeenLover(torch.nn.Module):
    """Scores the items of the history highest, the target next, everything else zero."""

    def __init__(self, num_items, targets):
        super().__init__()
        self.num_items, self.targets, self.unused = num_items, targets, torch.nn.Parameter(torch.zeros(()))

    def scores(self, users, histories):  # one batch holds every example of the walk
        scores = torch.zeros(len(histories), self.num_items + 1)
        scores[torch.arange(len(histories)), self.targets] = 5.0
        scores.scatter_(1, histories, 10.0)
        scores[:, 0] = -1e9
        return scores


def test_noise_and_seen_masking_change_what_the_evaluator_sees(walk):
    data = load_dataset("walk")
    folder = Path(get_dataset("walk").path)
    clean = Evaluator(data, "test", data_folder=folder)
    noisy = Evaluator(data, "test", data_folder=folder, noise="deletion")
    assert not torch.equal(clean.histories, noisy.histories)
    assert ((clean.histories > 0).sum(1) - (noisy.histories > 0).sum(1)).max() == 1  # one item deleted at most
    accelerator = make_accelerator()
    model = SeenLover(data.num_items, clean.targets)
    masked = Evaluator(data, "test", data_folder=folder, mask_seen_items=True).evaluate(model, accelerator)
    unmasked = clean.evaluate(model, accelerator)
    assert masked["mrr"] == pytest.approx(1.0) and unmasked["mrr"] < 0.9
