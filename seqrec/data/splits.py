"""Train / validation / test from chronological sequences (see seqrec/data/prepared.py for the output shape).

- ``loo``: leave-one-out; the last item is the test target, the second last the validation target (default).
- ``user-ratio``: each user's sequence is cut chronologically by a ratio (8:1:1, DELRec's protocol), with at
  least one validation and one test item; every validation and test item is one example whose history is
  everything before it, so training never sees a later item.
- ``global-time``: one cut at a quantile of all timestamps (0.8, the ECIR26 paper's protocol); a user's first
  interaction at or after the cut is the test target, the last one before it the validation target.

A user too short for a split (fewer than three items, or nothing before the global cut) gives fewer examples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqrec.data.preprocess import PrepareOptions

EXAMPLE_COLUMNS = ["user", "history", "target"]


def per_user(interactions: pd.DataFrame, column: str) -> list[np.ndarray]:
    """The column cut into one array per user (interactions are sorted by user, then chronologically)."""
    users = interactions["user"].to_numpy()
    starts = np.flatnonzero(users[1:] != users[:-1]) + 1
    return np.split(interactions[column].to_numpy(), starts)


def ratio_cuts(n: int, ratio: tuple[float, float, float]) -> tuple[int, int]:
    """(end of train, end of validation) for a sequence of n items."""
    valid = max(1, round(n * ratio[1]))
    test = max(1, round(n * ratio[2]))
    return n - valid - test, n - test


def split(interactions: pd.DataFrame, options: PrepareOptions) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    users = np.unique(interactions["user"].to_numpy())
    sequences = per_user(interactions, "item")
    ratings = per_user(interactions, "rating")
    train, valid, test = [], [], []

    def examples(into: list, user: int, items: np.ndarray, start: int, end: int) -> None:
        into.extend((user, items[max(0, t - options.max_len):t].tolist(), int(items[t])) for t in range(start, end))

    if options.split == "global-time":
        cutoff = np.quantile(interactions["timestamp"].to_numpy(), options.time_quantile)
        for user, items, rated, times in zip(users, sequences, ratings, per_user(interactions, "timestamp")):
            before = int(np.searchsorted(times, cutoff, side="left"))  # times are sorted within a user
            if before >= 2:
                train.append((user, items[:before - 1].tolist(), rated[:before - 1].tolist()))
                examples(valid, user, items, before - 1, before)
            if 0 < before < len(items):
                examples(test, user, items, before, before + 1)
    else:
        for user, items, rated in zip(users, sequences, ratings):
            n = len(items)
            end_train, end_valid = (n - 2, n - 1) if options.split == "loo" else ratio_cuts(n, options.split_ratio)
            if end_train < 1:
                continue
            train.append((user, items[:end_train].tolist(), rated[:end_train].tolist()))
            examples(valid, user, items, end_train, end_valid)
            examples(test, user, items, end_valid, n)
    return (pd.DataFrame(train, columns=["user", "items", "ratings"]), pd.DataFrame(valid, columns=EXAMPLE_COLUMNS),
            pd.DataFrame(test, columns=EXAMPLE_COLUMNS))
