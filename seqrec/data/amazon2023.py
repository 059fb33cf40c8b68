"""Amazon Reviews 2023 (McAuley Lab): streaming readers for the review and meta files, their download, and the
release's benchmark split CSVs.

Reviews ``<Category>.jsonl[.gz]``: one JSON object a line with user_id, parent_asin, rating, timestamp (ms).
Meta ``meta_<Category>.jsonl[.gz]``: parent_asin, title, features, description, categories, store, details.
Files are read line by line; reviews go into compact arrays (:class:`InteractionColumns`) and only the meta of
items that have reviews is kept, so a large category never has to fit in memory as text.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import json
import math
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from seqrec.data.raw import BadRows, InteractionColumns, Raw
from seqrec.errors import SeqrecError
from seqrec.progress import progress_bar

CATEGORIES = (
    "All_Beauty", "Amazon_Fashion", "Appliances", "Arts_Crafts_and_Sewing", "Automotive", "Baby_Products",
    "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl", "Cell_Phones_and_Accessories",
    "Clothing_Shoes_and_Jewelry", "Digital_Music", "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food",
    "Handmade_Products", "Health_and_Household", "Health_and_Personal_Care", "Home_and_Kitchen",
    "Industrial_and_Scientific", "Kindle_Store", "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments",
    "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies", "Software", "Sports_and_Outdoors",
    "Subscription_Boxes", "Tools_and_Home_Improvement", "Toys_and_Games", "Unknown", "Video_Games",
)
DEFAULT_BASE_URL = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw"
BASE_URL_ENV = "SEQREC_AMAZON_BASE_URL"
# Meta fields kept as item text, and how a list value is joined (categories are a path from broad to narrow).
META_TEXT_FIELDS = {"categories": " > ", "store": " ", "features": " ", "description": " "}
BENCHMARK_PARTS = ("train", "valid", "test")
PROGRESS_EVERY = 20_000  # lines between progress-bar updates
CHUNK = 1 << 20


def check_categories(categories: list[str]) -> list[str]:
    """Valid, de-duplicated and sorted (the merge order then does not depend on how they were typed)."""
    if not categories:
        raise SeqrecError("give at least one --category, e.g. --category Video_Games")
    for category in categories:
        if category not in CATEGORIES:
            close = difflib.get_close_matches(category, CATEGORIES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SeqrecError(f"unknown Amazon 2023 category {category!r}{hint}; valid names: {', '.join(CATEGORIES)}")
    return sorted(set(categories))


# reading ------------------------------------------------------------------------------------------------------
def text_lines(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line, bytes of the file read so far) for a plain or gzipped file."""
    with path.open("rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if path.name.endswith(".gz") else raw
        try:
            for number, line in enumerate(stream, 1):
                yield number, line, raw.tell()
        except (OSError, EOFError, zlib.error) as exc:
            raise SeqrecError(f"{path}: cannot be read as {'gzip' if stream is not raw else 'text'} ({exc})") from None


def json_records(path: Path, bad_rows: BadRows, required: tuple[str, ...], bar) -> Iterator[tuple[int, dict]]:
    """(line number, record) for every usable line; bad lines are counted (or stop the run with strict)."""
    task = bar.add_task(f"reading {path.name}", total=path.stat().st_size)
    for number, line, done in text_lines(path):
        if number % PROGRESS_EVERY == 0:
            bar.update(task, completed=done)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            bad_rows.add(path, number, f"malformed JSON ({getattr(exc, 'msg', exc)})")
            continue
        if not isinstance(record, dict) or any(record.get(key) in (None, "") for key in required):
            bad_rows.add(path, number, f"a record needs {', '.join(required)}")
            continue
        yield number, record
    bar.remove_task(task)


def add_interaction(columns: InteractionColumns, path: Path, number: int, bad_rows: BadRows, user, item, rating,
                    timestamp) -> None:
    """One review or benchmark row; a rating or timestamp that is not a number makes the row bad."""
    try:
        rating = math.nan if rating in (None, "") else float(rating)
        timestamp = int(float(timestamp))
    except (TypeError, ValueError):
        bad_rows.add(path, number, "rating and timestamp must be numbers")
        return
    columns.add(str(user), str(item), rating, timestamp)


def read_reviews(path: Path, columns: InteractionColumns, bad_rows: BadRows, bar) -> None:
    for number, record in json_records(path, bad_rows, ("user_id", "parent_asin", "timestamp"), bar):
        add_interaction(columns, path, number, bad_rows, record["user_id"], record["parent_asin"],
                        record.get("rating"), record["timestamp"])


def read_benchmark(path: Path, columns: InteractionColumns, bad_rows: BadRows) -> None:
    """A benchmark split CSV (user_id,parent_asin,rating,timestamp[,history]); the history column is derived
    from the other rows, so it is not needed."""
    lines = (line.decode("utf-8", errors="replace") for _, line, _ in text_lines(path))
    reader = csv.DictReader(lines)
    missing = {"user_id", "parent_asin", "timestamp"} - set(reader.fieldnames or ())
    if missing:
        raise SeqrecError(f"{path}: missing column(s) {', '.join(sorted(missing))} (a benchmark split CSV has "
                          "user_id,parent_asin,rating,timestamp[,history])")
    for number, row in enumerate(reader, 2):
        if not row.get("user_id") or not row.get("parent_asin"):
            bad_rows.add(path, number, "a row needs user_id and parent_asin")
            continue
        add_interaction(columns, path, number, bad_rows, row["user_id"], row["parent_asin"], row.get("rating"),
                        row.get("timestamp"))


def joined(value, separator: str) -> str:
    if isinstance(value, list):
        return separator.join(joined(part, separator) for part in value if part not in (None, ""))
    return "" if value is None else str(value)


def read_meta(path: Path, wanted: dict[str, int], rows: dict[str, list], bad_rows: BadRows, bar) -> None:
    """Append the meta of reviewed items not seen yet (the first record of an item wins)."""
    seen = set(rows["item"])
    for _, record in json_records(path, bad_rows, ("parent_asin",), bar):
        item = record["parent_asin"]
        if item in wanted and item not in seen:
            seen.add(item)
            rows["item"].append(item)
            rows["title"].append(joined(record.get("title"), " "))
            for name, separator in META_TEXT_FIELDS.items():
                rows[name].append(joined(record.get(name), separator))


def read(review_files: list[Path], meta_files: list[Path], strict: bool = False) -> Raw:
    """Reviews (or benchmark CSVs) and meta of several categories merged into one dataset, in file order."""
    bad_rows, columns = BadRows(strict), InteractionColumns()
    meta_rows = {"item": [], "title": [], **{name: [] for name in META_TEXT_FIELDS}}
    with progress_bar(transfer=True) as bar:
        for path in review_files:
            if path.name.endswith((".csv", ".csv.gz")):
                read_benchmark(path, columns, bad_rows)
            else:
                read_reviews(path, columns, bad_rows, bar)
        for path in meta_files:
            read_meta(path, columns.item_codes, meta_rows, bad_rows, bar)
    return Raw(columns.frame(), pd.DataFrame(meta_rows), bad_rows)


# local files --------------------------------------------------------------------------------------------------
def find_file(folder: Path, stem: str, suffixes: tuple[str, ...], what: str) -> Path:
    for suffix in suffixes:
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    raise SeqrecError(f"missing {what} file {folder / (stem + suffixes[0])} (or {stem}{suffixes[1]})")


def review_file(category: str, folder: Path) -> Path:
    return find_file(folder, category, (".jsonl", ".jsonl.gz"), "review")


def meta_file(category: str, folder: Path) -> Path:
    return find_file(folder, f"meta_{category}", (".jsonl", ".jsonl.gz"), "meta")


def benchmark_files(category: str, folder: Path) -> list[Path]:
    """The release's benchmark split of a category (e.g. 5core/last_out_w_his/Video_Games.train.csv.gz):
    train, valid and test rows together are the category's 5-core interactions."""
    return [find_file(folder, f"{category}.{part}", (".csv", ".csv.gz"), "benchmark split") for part in BENCHMARK_PARTS]


# download -----------------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: Path, bar) -> None:
    """Download into ``target`` via ``target.part``, resuming a partial file with an HTTP Range request."""
    partial = target.with_name(target.name + ".part")
    start = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the partial file is not a prefix the server knows: start over
            partial.unlink()
            return download(url, target, bar)
        raise SeqrecError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SeqrecError(f"cannot reach {url} ({getattr(exc, 'reason', exc)}); download the files yourself and "
                          f"pass --raw-dir, or point --base-url / {BASE_URL_ENV} at a mirror") from None
    resumed = start > 0 and response.status == 206
    done = start if resumed else 0
    length = response.headers.get("Content-Length")
    task = bar.add_task(f"downloading {target.name}", total=int(length) + done if length else None, completed=done)
    try:
        with response, partial.open("ab" if resumed else "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                bar.advance(task, len(chunk))
    except OSError as exc:
        raise SeqrecError(f"download of {url} was interrupted ({exc}); run the command again to resume") from None
    bar.remove_task(task)
    partial.replace(target)


def fetch(categories: list[str], folder: Path, base_url: str | None = None, with_reviews: bool = True
          ) -> dict[Path, str]:
    """Review (unless not wanted) and meta files of each category downloaded into folder (kept for reuse), with
    their sha256.

    Checksums are recorded in ``folder/checksums.json``; a kept file that no longer matches its checksum is an
    error rather than silently different data.
    """
    base = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "checksums.json"
    checksums = json.loads(record.read_text()) if record.exists() else {}
    digests = {}
    with progress_bar(transfer=True) as bar:
        remotes = [f"review_categories/{category}.jsonl.gz" for category in categories if with_reviews]
        remotes += [f"meta_categories/meta_{category}.jsonl.gz" for category in categories]
        for remote in remotes:
            target = folder / Path(remote).name
            if not target.exists():
                download(f"{base}/{remote}", target, bar)
            digest = sha256(target)
            if checksums.get(target.name, digest) != digest:
                raise SeqrecError(f"{target} does not match the checksum recorded when it was downloaded; "
                                  "delete it to download it again")
            checksums[target.name] = digests[target] = digest
    record.write_text(json.dumps(checksums, indent=2, sort_keys=True))
    return digests

