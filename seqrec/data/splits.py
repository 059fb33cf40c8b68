"""Train / validation / test from chronological sequences (see seqrec/data/prepared.py for the output shape).

- ``loo``: leave-one-out, the last item is the test target, the second last the validation target (default).
- ``user-ratio``: each user's sequence is cut chronologically 8:1:1; every validation and test interaction is
  one example whose history is everything before it (DELRec's protocol: training never sees later items).
- ``global-time``: one cut at a quantile of all timestamps (0.8 by default, the ECIR26 paper's protocol); a
  user's first interaction after the cut is the test target, the last one before it the validation target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqrec.data.preprocess import PrepareOptions


def sequences_by_user(interactions: pd.DataFrame) -> pd.Series:
    """user -> chronological item array (interactions are already in chronological order per user)."""
    return interactions.groupby("user", sort=True)["item"].agg(lambda items: items.to_numpy())


def example(user: int, history, target: int, max_len: int) -> dict:
    return {"user": user, "history": [int(i) for i in history[-max_len:]], "target": int(target)}


def split(interactions: pd.DataFrame, options: PrepareOptions) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    sequences = sequences_by_user(interactions)
    train, valid, test = [], [], []
    if options.split == "global-time":
        cutoff = np.quantile(interactions["timestamp"], options.time_quantile)
        times = interactions.groupby("user", sort=True)["timestamp"].agg(lambda t: t.to_numpy())
        for user, items in sequences.items():
            before = items[times[user] < cutoff]
            after = items[times[user] >= cutoff]
            if len(before) >= 2:
                train.append({"user": user, "items": [int(i) for i in before[:-1]]})
                valid.append(example(user, before[:-1], before[-1], options.max_len))
            if len(after) and len(before):
                test.append(example(user, before, after[0], options.max_len))
    else:
        for user, items in sequences.items():
            n = len(items)
            if options.split == "loo":
                cut_valid, cut_test = n - 2, n - 1
            else:
                cut_valid = max(1, int(round(n * options.split_ratio[0])))
                cut_test = max(cut_valid, int(round(n * (options.split_ratio[0] + options.split_ratio[1]))))
            if cut_valid < 1:
                continue
            train.append({"user": user, "items": [int(i) for i in items[:cut_valid]]})
            valid.extend(example(user, items[:t], items[t], options.max_len) for t in range(cut_valid, cut_test))
            test.extend(example(user, items[:t], items[t], options.max_len) for t in range(cut_test, n))
    columns = ["user", "history", "target"]
    return (pd.DataFrame(train, columns=["user", "items"]), pd.DataFrame(valid, columns=columns),
            pd.DataFrame(test, columns=columns))
