"""Content hashes: a run's identity (its resolved config) and an artifact's (its bytes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHUNK = 1 << 20


def config_hash(config: dict) -> str:
    """A stable hash of a fully resolved config: key order and whitespace do not matter."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256, bytes) of a file, or of a folder's files taken in sorted order with their relative names."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    total = 0
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                total += len(chunk)
    return digest.hexdigest(), total
