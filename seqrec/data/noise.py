"""The first paper's simulated deletion noise: one interaction goes missing from a user's history.

For a sequence of length T, k is drawn uniformly from 1..T and item k is removed, leaving T-1 items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqrec.errors import SeqrecError


def delete_one(sequence: list[int], rng: np.random.Generator) -> list[int]:
    """Remove one uniformly chosen item; a sequence of one item is left as it is (nothing would remain)."""
    if len(sequence) < 2:
        return list(sequence)
    k = int(rng.integers(len(sequence)))
    return list(sequence[:k]) + list(sequence[k + 1:])


def parse_noise(spec: str | None) -> tuple[str, float] | None:
    """``deletion`` or ``deletion:RATE`` (the share of examples whose history loses an item)."""
    if spec in (None, "", "none"):
        return None
    kind, _, rate = spec.partition(":")
    if kind != "deletion":
        raise SeqrecError(f"unknown noise {spec!r}; use deletion or deletion:RATE")
    try:
        value = float(rate) if rate else 1.0
    except ValueError:
        raise SeqrecError(f"noise rate must be a number in (0, 1], got {rate!r}") from None
    if not 0 < value <= 1:
        raise SeqrecError(f"noise rate must be in (0, 1], got {value}")
    return kind, value


def apply_deletion_noise(examples: pd.DataFrame, rate: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """A copy of evaluation examples whose histories lose one item each (a ``rate`` share of them)."""
    rng = np.random.default_rng(seed)
    chosen = rng.random(len(examples)) < rate
    histories = [delete_one(history, rng) if pick else list(history)
                 for history, pick in zip(examples["history"], chosen)]
    return examples.assign(history=histories)
