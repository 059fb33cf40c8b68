"""From raw interactions to clean chronological sequences: the same steps, in the same order, for every source.

Input frames: interactions with columns ``user``, ``item`` (raw ids as strings), ``rating`` (float, may be NaN),
``timestamp`` (int) in source-file order; items with ``item``, ``title`` and optional text attributes.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from seqrec.errors import SeqrecError

PLACEHOLDER_TITLE = "Unknown item {item}"
TIE_BREAK = "stable: equal timestamps keep source-file order"


@dataclass(frozen=True)
class PrepareOptions:
    k_core: int = 5
    max_len: int = 10
    rating_threshold: float | None = None
    missing_titles: str = "drop"  # or "placeholder"
    split: str = "loo"  # loo | user-ratio | global-time
    split_ratio: tuple[float, float, float] = (0.8, 0.1, 0.1)
    time_quantile: float = 0.8

    def __post_init__(self):
        if self.k_core < 1:
            raise SeqrecError(f"--k-core must be at least 1, got {self.k_core}")
        if self.max_len < 1:
            raise SeqrecError(f"--max-len must be at least 1, got {self.max_len}")
        if self.missing_titles not in ("drop", "placeholder"):
            raise SeqrecError(f"--missing-titles must be drop or placeholder, got {self.missing_titles!r}")
        if self.split not in ("loo", "user-ratio", "global-time"):
            raise SeqrecError(f"--split must be loo, user-ratio or global-time, got {self.split!r}")
        if not 0 < self.time_quantile < 1:
            raise SeqrecError(f"--time-quantile must be between 0 and 1, got {self.time_quantile}")
        if len(self.split_ratio) != 3 or abs(sum(self.split_ratio) - 1) > 1e-6 or min(self.split_ratio) <= 0:
            raise SeqrecError(f"--split-ratio must be three positive parts summing to 1, got {self.split_ratio}")

    def as_record(self) -> dict:
        return {**asdict(self), "split_ratio": list(self.split_ratio), "tie_break": TIE_BREAK}


def clean_title(value) -> str:
    """HTML entities decoded and whitespace collapsed; empty when there is no usable title."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return re.sub(r"\s+", " ", html.unescape(str(value))).strip()


def k_core(interactions: pd.DataFrame, k: int) -> pd.DataFrame:
    """Drop users and items with fewer than k interactions, repeatedly, until every one has at least k."""
    while True:
        user_counts = interactions["user"].map(interactions["user"].value_counts())
        item_counts = interactions["item"].map(interactions["item"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return interactions
        interactions = interactions[keep]


def clean_interactions(interactions: pd.DataFrame, items: pd.DataFrame, options: PrepareOptions,
                       dropped: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Threshold, dedupe, titles, k-core, chronological order. ``dropped`` counts removed rows by reason."""
    interactions = interactions.assign(row=np.arange(len(interactions)))
    if options.rating_threshold is not None:
        keep = interactions["rating"] >= options.rating_threshold
        dropped["below_rating_threshold"] = int((~keep).sum())
        interactions = interactions[keep]

    chronological = interactions.sort_values(["user", "timestamp", "row"])
    duplicated = chronological.duplicated(["user", "item"], keep="first")
    dropped["duplicates"] = int(duplicated.sum())
    interactions = chronological[~duplicated]

    items = items.drop_duplicates("item").assign(title=lambda frame: frame["title"].map(clean_title))
    titles = interactions["item"].map(items.set_index("item")["title"]).fillna("")
    untitled = titles == ""
    dropped["placeholder_titles" if options.missing_titles == "placeholder" else "no_title"] = int(
        interactions.loc[untitled, "item"].nunique())
    if options.missing_titles == "drop":
        dropped["no_title_interactions"] = int(untitled.sum())
        interactions = interactions[~untitled]

    before = len(interactions)
    interactions = k_core(interactions, options.k_core)
    dropped["k_core"] = before - len(interactions)
    if interactions.empty:
        raise SeqrecError(f"nothing is left after {options.k_core}-core filtering; try a smaller --k-core")
    return interactions, items


def assign_ids(interactions: pd.DataFrame, items: pd.DataFrame, options: PrepareOptions):
    """Dense ids: users 1..U in order of first appearance, items 1..N likewise (0 is padding)."""
    item_ids = {raw: i + 1 for i, raw in enumerate(pd.unique(interactions["item"]))}
    user_ids = {raw: u + 1 for u, raw in enumerate(pd.unique(interactions["user"]))}
    table = pd.DataFrame({"source_id": list(item_ids), "item": list(item_ids.values())})
    table = table.merge(items.rename(columns={"item": "source_id"}), on="source_id", how="left")
    missing = table["title"].isna() | (table["title"] == "")
    table.loc[missing, "title"] = [PLACEHOLDER_TITLE.format(item=raw) for raw in table.loc[missing, "source_id"]]
    table = table[["item", "source_id", "title", *[c for c in table.columns if c not in ("item", "source_id", "title")]]]
    mapped = pd.DataFrame({
        "user": interactions["user"].map(user_ids).to_numpy(np.int64),
        "item": interactions["item"].map(item_ids).to_numpy(np.int64),
        "timestamp": interactions["timestamp"].to_numpy(np.int64),
    })
    return mapped, table.reset_index(drop=True)
