"""Amazon Reviews 2023 (McAuley Lab): streaming readers for review and meta jsonl files, and their download.

Reviews: one JSON object a line with user_id, parent_asin, rating, timestamp (milliseconds).
Meta: parent_asin, title, features, description, categories, store, details.
Files are read line by line (plain or gzip); only the needed fields are kept, so a large category never has
to fit in memory as text.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from seqrec.data.sources import interactions_frame
from seqrec.errors import SeqrecError

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
META_TEXT_FIELDS = ("categories", "store", "features", "description")


def check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise SeqrecError(f"unknown Amazon 2023 category {category!r}; valid names: {', '.join(CATEGORIES)}")
    return category


def open_lines(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


class MalformedLines:
    """Counts lines that are not valid JSON records; with ``strict`` the first one stops the run."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.count = 0
        self.first: list[str] = []

    def add(self, path: Path, line_number: int, reason: str) -> None:
        if self.strict:
            raise SeqrecError(f"{path}, line {line_number}: {reason}")
        self.count += 1
        if len(self.first) < 5:
            self.first.append(f"{path.name}:{line_number}")


def json_records(path: Path, malformed: MalformedLines, required: tuple[str, ...]):
    with open_lines(path) as lines:
        for line_number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                malformed.add(path, line_number, f"malformed JSON ({exc.msg})")
                continue
            if not isinstance(record, dict) or any(record.get(key) in (None, "") for key in required):
                malformed.add(path, line_number, f"a record needs {', '.join(required)}")
                continue
            yield record


def read_reviews(path: Path, malformed: MalformedLines) -> pd.DataFrame:
    users, items, ratings, times = [], [], [], []
    for record in json_records(path, malformed, ("user_id", "parent_asin")):
        users.append(record["user_id"])
        items.append(record["parent_asin"])
        ratings.append(record.get("rating"))
        times.append(int(record.get("timestamp") or 0) // 1000)
    return interactions_frame(users, items, ratings, times)


def flatten(value) -> str:
    if isinstance(value, list):
        return " ".join(flatten(part) for part in value)
    return "" if value is None else str(value)


def read_meta(path: Path, malformed: MalformedLines) -> pd.DataFrame:
    rows = {"item": [], "title": [], **{field: [] for field in META_TEXT_FIELDS}}
    for record in json_records(path, malformed, ("parent_asin",)):
        rows["item"].append(record["parent_asin"])
        rows["title"].append(record.get("title") or "")
        for field in META_TEXT_FIELDS:
            rows[field].append(flatten(record.get(field)))
    return pd.DataFrame(rows)


def read_benchmark_csv(path: Path) -> pd.DataFrame:
    """The release's benchmark split files (user_id, parent_asin, rating, timestamp[, history])."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"user_id", "parent_asin"} - set(frame.columns)
    if missing:
        raise SeqrecError(f"{path}: missing columns {', '.join(sorted(missing))}")
    times = pd.to_numeric(frame.get("timestamp", 0), errors="coerce").fillna(0).astype("int64") // 1000
    return interactions_frame(frame["user_id"], frame["parent_asin"], frame.get("rating", float("nan")), times)


def raw_files(category: str, raw_dir: Path) -> tuple[Path, Path]:
    """The review and meta files of a category in raw_dir, gzipped or not."""
    found = []
    for stem in (category, f"meta_{category}"):
        candidates = [raw_dir / f"{stem}.jsonl", raw_dir / f"{stem}.jsonl.gz"]
        existing = [path for path in candidates if path.exists()]
        if not existing:
            raise SeqrecError(f"missing file {candidates[0]} (or {candidates[1].name}) for category {category}")
        found.append(existing[0])
    return found[0], found[1]


def download(url: str, target: Path) -> str:
    """Download with resume (HTTP Range) and a progress bar; returns the file's sha256."""
    partial = target.with_suffix(target.suffix + ".part")
    if not target.exists():
        start = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
        try:
            response = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as exc:
            raise SeqrecError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SeqrecError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}; download the files yourself "
                              f"and pass --raw-dir, or set {BASE_URL_ENV}") from None
        resumed = start and response.status == 206
        total = int(response.headers.get("Content-Length") or 0) + (start if resumed else 0)
        with response, partial.open("ab" if resumed else "wb") as out, Progress(
                TextColumn(target.name), BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True) as bar:
            task = bar.add_task("download", total=total or None, completed=start if resumed else 0)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.advance(task, len(chunk))
        partial.rename(target)
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_category(category: str, folder: Path, base_url: str | None = None) -> tuple[Path, Path, dict]:
    """Download a category's review and meta files into folder (kept for reuse); returns their checksums."""
    base = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    folder.mkdir(parents=True, exist_ok=True)
    reviews = folder / f"{category}.jsonl.gz"
    meta = folder / f"meta_{category}.jsonl.gz"
    checksums = {
        reviews.name: download(f"{base}/review_categories/{reviews.name}", reviews),
        meta.name: download(f"{base}/meta_categories/{meta.name}", meta),
    }
    (folder / "checksums.json").write_text(json.dumps(checksums, indent=2))
    return reviews, meta, checksums


def read_categories(categories: list[str], raw_dir: Path | None, download_dir: Path, base_url: str | None,
                    strict: bool) -> tuple[pd.DataFrame, pd.DataFrame, list[Path], MalformedLines]:
    """Merge several categories into one dataset (the seeds' multi-domain training mix)."""
    malformed = MalformedLines(strict)
    interactions, items, files = [], [], []
    for category in categories:
        check_category(category)
        if raw_dir is not None:
            reviews, meta = raw_files(category, Path(raw_dir))
        else:
            reviews, meta, _ = fetch_category(category, download_dir, base_url)
        interactions.append(read_reviews(reviews, malformed))
        items.append(read_meta(meta, malformed))
        files += [reviews, meta]
    return pd.concat(interactions, ignore_index=True), pd.concat(items, ignore_index=True), files, malformed
