"""A tiny prepared dataset with a learnable pattern (each user walks the catalogue in steps of one or two)."""

import numpy as np
import pandas as pd

from seqrec.data.prepare import prepare_csv
from seqrec.recsys.evaluate import Evaluator


def make_walk_dataset(folder, name="walk", users=40, items=24, length=14, seed=0, titles=None):
    """``titles`` (one per item) replace the plain "Item number N" ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        start, step = int(rng.integers(items)), 1 + user % 2
        for t in range(length):
            rows.append((f"u{user}", f"i{(start + step * t) % items}", 5, 1_000 + t))
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(folder / "inter.csv", index=False)
    pd.DataFrame({"item_id": [f"i{i}" for i in range(items)],
                  "title": titles or [f"Item number {i}" for i in range(items)]}).to_csv(folder / "items.csv",
                                                                                          index=False)
    return prepare_csv(folder / "inter.csv", folder / "items.csv", name=name, k_core=2, max_len=5)


def interrupt_at_evaluation(monkeypatch, call):
    """Evaluator.evaluate raises KeyboardInterrupt (a Ctrl-C) on its call-th call; returns the original to restore."""
    original, calls = Evaluator.evaluate, {"n": 0}

    def interrupted(self, model, accelerator):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, model, accelerator)

    monkeypatch.setattr(Evaluator, "evaluate", interrupted)
    return original
