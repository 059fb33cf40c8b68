"""Find the folders that ship beside the code (migrations/, templates/) in a wheel or a source checkout."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """``seqrec/<name>`` inside an installed wheel, else ``<repo>/<name>`` in a source checkout."""
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"seqrec resource folder {name!r} is missing from the installation")
