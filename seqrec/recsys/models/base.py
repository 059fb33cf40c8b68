"""What every sequential recommender shares: its options, an item table, a user state per history, scores over
all items, and the two training objectives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.recsys.models.item_table import item_table
from seqrec.recsys.configs import RecommenderConfig


class SequentialRecommender(nn.Module):
    """Subclasses implement ``encode(users, histories) -> [batch, hidden]``, the state after a left-padded history;
    ``encode_positions`` (the state after every prefix) has a generic form that a subclass may compute in one pass.

    Objectives: ``last`` scores the newest position of each example (histories [batch, L], targets [batch]);
    ``all`` scores every non-padding position (targets [batch, L], 0 where there is no next item).
    """

    def __init__(self, num_items: int, config: RecommenderConfig, frozen_items=None):
        super().__init__()
        self.num_items = num_items
        self.items = item_table(num_items, config.hidden, frozen_items)
        self.loss_type, self.objective = config.loss, config.objective

    def encode(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_positions(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        """[batch, L, hidden]: position t holds ``encode`` of the history up to t, computed prefix by prefix
        (each prefix left-padded to L, as ``encode`` expects)."""
        batch, length = histories.shape
        windows = F.pad(histories, (length - 1, 0)).unfold(1, length, 1)  # window t ends at position t
        states = self.encode(users.repeat_interleave(length), windows.reshape(batch * length, length))
        return states.view(batch, length, -1)

    def output_items(self) -> torch.Tensor:
        """The item vectors scores are taken against (tied with the input table)."""
        return self.items.all_items()

    def scores(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        """[batch, num_items + 1] in float32; the padding item's score is -inf so that it is never ranked.

        Under autocast (mixed-precision evaluation) the encoder runs in low precision, but the scores are taken
        in float32: bf16 keeps 8 bits of mantissa, so nearby scores would tie and ranks would be decided by rounding.
        """
        states, table = self.encode(users, histories), self.output_items()
        with torch.autocast(states.device.type, enabled=False):
            logits = states.float() @ table.float().T
        logits[:, 0] = float("-inf")
        return logits

    def forward(self, users: torch.Tensor, histories: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss (called through forward so that DistributedDataParallel syncs gradients)."""
        return self.loss(users, histories, targets)

    def loss(self, users: torch.Tensor, histories: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.objective == "all":
            scored = targets > 0
            states, targets = self.encode_positions(users, histories)[scored], targets[scored]
        else:
            states = self.encode(users, histories)
        return next_item_loss(states, self.output_items(), targets, self.loss_type, self.num_items)


def next_item_loss(states: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, loss: str,
                   num_items: int) -> torch.Tensor:
    """The mean loss of predicting ``targets`` [n] from ``states`` [n, hidden]: softmax cross-entropy over every
    item, or (``bce``) binary cross-entropy of the target against one uniformly drawn negative."""
    if loss == "bce":
        negatives = torch.randint(1, num_items + 1, targets.shape, device=targets.device)
        positive = (states * table[targets]).sum(-1)
        negative = (states * table[negatives]).sum(-1)
        return F.softplus(-positive).mean() + F.softplus(negative).mean()
    return catalogue_cross_entropy(states, table, targets)


def catalogue_cross_entropy(states: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the targets over every real item (row 0, padding, is never a candidate)."""
    return F.cross_entropy(states @ table[1:].T, targets - 1)
