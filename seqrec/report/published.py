"""The papers' published numbers (published.toml), looked up by dataset, protocol and metric.

They are data, not code, so that every reference number can be checked against its named source table.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATA_FILE = Path(__file__).with_name("published.toml")


@dataclass(frozen=True)
class PublishedTable:
    tag: str
    report: str
    file: str
    table: str
    protocol: str
    notes: str
    # (row label, published dataset name, metric) -> (value, std or None)
    values: dict[tuple[str, str, str], tuple[float, float | None]]
    # the same keys -> the relative improvement the paper prints (0.052 for +5.20%), where it prints one
    relative: dict[tuple[str, str, str], float]

    def columns(self) -> list[tuple[str, str]]:
        """(dataset, metric) in the paper's order."""
        return list(dict.fromkeys((dataset, metric) for _, dataset, metric in self.values))

    @property
    def source(self) -> str:
        return f"{self.tag}: paper {self.file}, {self.table}" + (f" ({self.notes})" if self.notes else "")


def normalize(name: str) -> str:
    """Dataset names compared without case, punctuation or an Amazon prefix ("Video_Games" ~ "amazon-games")."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return re.sub(r"^amazon(2023)?(?=.)", "", key)


def _cells(entry: dict, rows: dict) -> dict[tuple[str, str, str], object]:
    """(row, dataset, metric) -> the printed entry, from rows listed dataset-major."""
    datasets, metrics = entry["datasets"], entry["metrics"]
    cells = {}
    for row, numbers in rows.items():
        if len(numbers) != len(datasets) * len(metrics):
            raise ValueError(f"{DATA_FILE.name}: {entry['tag']} row {row!r} has {len(numbers)} values, "
                             f"expected {len(datasets)} datasets x {len(metrics)} metrics")
        cells.update(zip([(row, dataset, metric) for dataset in datasets for metric in metrics], numbers))
    return cells


def _parse(entry: dict) -> PublishedTable:
    values = {key: (number[0], number[1]) if isinstance(number, list) else (number, None)
              for key, number in _cells(entry, entry["rows"]).items()}
    relative = {key: percent / 100 for key, percent in _cells(entry, entry.get("relative", {})).items()}
    return PublishedTable(tag=entry["tag"], report=entry["report"], file=entry["file"], table=entry["table"],
                          protocol=entry["protocol"], notes=entry.get("notes", ""), values=values, relative=relative)


@functools.cache
def _load() -> tuple[dict[str, str], tuple[PublishedTable, ...]]:
    data = tomllib.loads(DATA_FILE.read_text(encoding="utf-8"))
    aliases = {normalize(alias): name for name, names in data["datasets"].items() for alias in [name, *names]}
    return aliases, tuple(_parse(entry) for entry in data["tables"])


def published_tables(report: str | None = None) -> list[PublishedTable]:
    """The published tables, or those shaped like one report table (main, distill, noise, ablation, profiles,
    delrec, delrec-ablation)."""
    return [table for table in _load()[1] if report is None or table.report == report]


def published_dataset(name: str) -> str | None:
    """The published name of one of our datasets, or None when no paper reports it."""
    return _load()[0].get(normalize(name))
