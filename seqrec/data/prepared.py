"""The prepared-dataset contract between data/ (which writes it) and every consumer (which reads it).

A prepared dataset is a folder of Parquet files in ``$SEQREC_HOME/data/<name>/``:

- ``items.parquet``: ``item`` (int, 1..N; 0 is padding and never appears), ``source_id`` (str, the id in the
  raw data), ``title`` (str), plus optional text attributes (``categories``, ``description``, ...).
- ``train.parquet``: ``user`` (int, 1..U), ``items`` (list<int>, the user's training interactions in
  chronological order, *not* truncated; consumers cut windows of ``max_len`` themselves), ``ratings``
  (list<float>, each training interaction's rating, NaN where the source has none; format 3 on).
- ``valid.parquet`` / ``test.parquet``: ``user``, ``history`` (list<int>, chronological, the last
  ``max_len`` items before the target), ``target`` (int). One row per evaluation example.
- ``meta.json``: name, source, options, stats and fingerprint (the same as the dataset row in the store).

Item ids are dense so that an embedding matrix row ``i`` belongs to item ``i``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from seqrec.errors import SeqrecError

SPLIT_FILES = ("items", "train", "valid", "test")


@dataclass
class PreparedData:
    name: str
    items: pd.DataFrame
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    meta: dict = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        """Number of real items; embedding tables need ``num_items + 1`` rows (row 0 is padding)."""
        return int(self.items["item"].max()) if len(self.items) else 0

    @property
    def num_users(self) -> int:
        return int(self.meta.get("stats", {}).get("users", len(self.train)))

    @property
    def max_len(self) -> int:
        return int(self.meta.get("options", {}).get("max_len", 10))

    def titles(self) -> list[str]:
        """Titles indexed by item id (index 0 is the padding item's empty title)."""
        by_id = dict(zip(self.items["item"].astype(int), self.items["title"].astype(str)))
        return [""] + [by_id.get(i, "") for i in range(1, self.num_items + 1)]


def write_prepared(data: PreparedData, folder: Path) -> None:
    """Write all files into ``folder`` (the caller writes to a temp folder and renames it into place)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPLIT_FILES:
        getattr(data, name).to_parquet(folder / f"{name}.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps(data.meta, indent=2, sort_keys=True, default=str))


def read_prepared(folder: Path, name: str | None = None) -> PreparedData:
    if not (folder / "meta.json").exists():
        raise SeqrecError(f"no prepared dataset in {folder}")
    meta = json.loads((folder / "meta.json").read_text())
    frames = {part: pd.read_parquet(folder / f"{part}.parquet") for part in SPLIT_FILES}
    return PreparedData(name=name or meta.get("name", folder.name), meta=meta, **frames)
