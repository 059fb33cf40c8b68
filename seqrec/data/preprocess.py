"""From raw interactions to clean chronological sequences: the same steps, in the same order, for every source.

1. implicit feedback: with a rating threshold, interactions rated below it (or unrated) are dropped;
2. chronological order per user, equal timestamps kept in source-file order (a stable sort, as RecBole does);
3. a repeated user-item pair keeps its first interaction in that order;
4. items without a usable title (after cleaning HTML entities and whitespace) are dropped or get a placeholder;
5. iterative k-core on users and items;
6. dense ids: users 1..U and items 1..N in order of first appearance in the source (0 is padding).

Work happens on integer codes (numpy), so a few million interactions need no per-row Python.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from seqrec.data.raw import Raw
from seqrec.errors import SeqrecError

PLACEHOLDER_TITLE = "Item {source_id}"
TIE_BREAK = "stable: source order"
SPLITS = ("loo", "user-ratio", "global-time")
WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class PrepareOptions:
    """Every option that changes a prepared dataset; all of them are recorded with it."""

    k_core: int = 5
    max_len: int = 10
    rating_threshold: float | None = None
    missing_titles: str = "drop"  # or "placeholder"
    split: str = "loo"  # loo | user-ratio | global-time
    split_ratio: Sequence[float] | str = (0.8, 0.1, 0.1)  # user-ratio; "8:1:1" or numbers, normalized to sum 1
    time_quantile: float = 0.8  # global-time

    def __post_init__(self):
        if self.k_core < 1:
            raise SeqrecError(f"--k-core must be at least 1, got {self.k_core}")
        if self.max_len < 1:
            raise SeqrecError(f"--max-len must be at least 1, got {self.max_len}")
        if self.missing_titles not in ("drop", "placeholder"):
            raise SeqrecError(f"--missing-titles must be drop or placeholder, got {self.missing_titles!r}")
        if self.split not in SPLITS:
            raise SeqrecError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if not 0 < self.time_quantile < 1:
            raise SeqrecError(f"--time-quantile must be between 0 and 1, got {self.time_quantile}")
        object.__setattr__(self, "split_ratio", parse_ratio(self.split_ratio))

    def as_record(self) -> dict:
        return {**asdict(self), "split_ratio": list(self.split_ratio), "tie_break": TIE_BREAK}


def parse_ratio(value: Sequence[float] | str) -> tuple[float, float, float]:
    """``"8:1:1"`` or three positive numbers -> three fractions summing to 1."""
    try:
        parts = [float(part) for part in (value.split(":") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 3 or min(parts) <= 0:
        raise SeqrecError(f"--split-ratio must be three positive numbers such as 8:1:1, got {value!r}")
    return tuple(round(part / sum(parts), 6) for part in parts)


def clean_title(value) -> str:
    """HTML entities decoded and whitespace collapsed; empty when there is no usable title."""
    if not isinstance(value, str):
        return ""
    return WHITESPACE.sub(" ", html.unescape(value)).strip()


def k_core(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Positions of the interactions that survive: drop users and items with fewer than k, until none has."""
    kept = np.arange(len(users))
    while len(kept):
        user_counts = np.bincount(users[kept])
        item_counts = np.bincount(items[kept])
        enough = (user_counts[users[kept]] >= k) & (item_counts[items[kept]] >= k)
        if enough.all():
            break
        kept = kept[enough]
    return kept


def dense(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids 1..n for codes, the kept codes in id order); codes are in order of first appearance already."""
    kept = np.unique(codes)
    lookup = np.zeros(int(kept.max()) + 1, dtype=np.int64)
    lookup[kept] = np.arange(1, len(kept) + 1)
    return lookup[codes], kept


@dataclass
class Cleaned:
    interactions: pd.DataFrame  # user, item (dense ids), timestamp, rating (NaN if unrated): by user, then in time
    items: pd.DataFrame  # item, source_id, title, attributes
    dropped: dict[str, int]  # rows removed, by reason
    placeholder_titles: int  # items that got a placeholder title


def preprocess(raw: Raw, options: PrepareOptions) -> Cleaned:
    frame = raw.interactions
    users, user_names = pd.factorize(frame["user"])
    items, item_names = pd.factorize(frame["item"])
    times = frame["timestamp"].to_numpy(np.int64)
    dropped = dict.fromkeys(("malformed", "below_rating_threshold", "duplicates", "no_title", "k_core"), 0)
    dropped["malformed"] = raw.bad_rows.count

    order = np.lexsort((times, users))  # stable: equal (user, time) keep source order
    if options.rating_threshold is not None:
        low = ~(frame["rating"].to_numpy() >= options.rating_threshold)  # unrated counts as below
        dropped["below_rating_threshold"] = int(low.sum())
        order = order[~low[order]]

    pairs = users[order].astype(np.int64) * len(item_names) + items[order]
    first = np.zeros(len(order), dtype=bool)
    first[np.unique(pairs, return_index=True)[1]] = True
    dropped["duplicates"] = int(len(order) - first.sum())
    order = order[first]

    titles = item_titles(raw.items, item_names)
    untitled = titles == ""
    if options.missing_titles == "drop":
        no_title = untitled[items[order]]
        dropped["no_title"] = int(no_title.sum())
        order = order[~no_title]

    before = len(order)
    order = order[k_core(users[order], items[order], options.k_core)]
    dropped["k_core"] = before - len(order)
    if not len(order):
        raise SeqrecError(f"nothing is left after {options.k_core}-core filtering ({before:,} interactions before "
                          "it); try a smaller --k-core")

    user_ids, _ = dense(users[order])
    item_ids, kept_items = dense(items[order])
    source_ids = np.asarray(item_names, dtype=object)[kept_items].astype(str)
    placeholder = untitled[kept_items]
    title = titles[kept_items]
    title[placeholder] = [PLACEHOLDER_TITLE.format(source_id=source_id) for source_id in source_ids[placeholder]]
    table = pd.DataFrame({"item": np.arange(1, len(kept_items) + 1), "source_id": source_ids, "title": title})
    table = table.join(item_attributes(raw.items, source_ids))
    ratings = frame["rating"].to_numpy(np.float32)
    interactions = pd.DataFrame({"user": user_ids, "item": item_ids, "timestamp": times[order],
                                 "rating": ratings[order]})
    return Cleaned(interactions, table, dropped, int(placeholder.sum()))


def first_rows(items: pd.DataFrame) -> pd.DataFrame:
    """One row per raw item id (the first), indexed by it."""
    return items.assign(item=items["item"].astype(str)).drop_duplicates("item").set_index("item")


def item_titles(items: pd.DataFrame, item_names) -> np.ndarray:
    """Clean titles aligned with the item codes ("" where an item has no usable title or no item row)."""
    raw_titles = first_rows(items[["item", "title"]])["title"]
    aligned = pd.Series(np.asarray(item_names, dtype=object).astype(str)).map(raw_titles)
    return np.array([clean_title(title) for title in aligned], dtype=object)


def item_attributes(items: pd.DataFrame, source_ids: np.ndarray) -> pd.DataFrame:
    """Optional text attributes (categories, description, ...) aligned with source_ids, whitespace cleaned."""
    attributes = first_rows(items).drop(columns="title")
    aligned = attributes.reindex(source_ids).reset_index(drop=True).fillna("")
    for column in aligned:
        aligned[column] = aligned[column].astype(str).str.replace(WHITESPACE, " ", regex=True).str.strip()
    return aligned
