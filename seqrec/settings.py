"""Where seqrec keeps its things: one home folder, overridable by environment variables.

``SEQREC_HOME`` (default ``./.seqrec``) holds the database, prepared data, pulled models and run
artifacts; ``SEQREC_DB`` overrides the database URL (any SQLAlchemy URL: SQLite or PostgreSQL).

Workers that share a study beat every ``SEQREC_HEARTBEAT_S`` seconds (default 30) while they hold a run; a run
whose worker has not beaten for ``SEQREC_RECLAIM_AFTER_S`` seconds (default 300) is taken over by another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from seqrec.errors import SeqrecError


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    heartbeat_s: float = 30.0
    reclaim_after_s: float = 300.0

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def ensure_home(self) -> Path:
        """Create the home folder (and its sub-folders) or explain why it cannot be written."""
        try:
            for folder in (self.home, self.data_dir, self.models_dir, self.runs_dir, self.cache_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeqrecError(f"SEQREC_HOME {self.home} is not writable: {exc.strerror or exc}") from None
        if not os.access(self.home, os.W_OK):
            raise SeqrecError(f"SEQREC_HOME {self.home} is not writable")
        return self.home


def seconds_from_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise SeqrecError(f"{name}={text!r}: give a positive number of seconds")
    return value


def get_settings() -> Settings:
    """Read the settings from the environment each time (tests and users change them between calls)."""
    home = Path(os.environ.get("SEQREC_HOME", ".seqrec")).expanduser().absolute()
    db_url = os.environ.get("SEQREC_DB") or f"sqlite:///{home / 'seqrec.db'}"
    heartbeat_s = seconds_from_env("SEQREC_HEARTBEAT_S", Settings.heartbeat_s)
    reclaim_after_s = seconds_from_env("SEQREC_RECLAIM_AFTER_S", Settings.reclaim_after_s)
    if reclaim_after_s <= heartbeat_s:
        raise SeqrecError(f"SEQREC_RECLAIM_AFTER_S ({reclaim_after_s:g}) must be longer than SEQREC_HEARTBEAT_S "
                          f"({heartbeat_s:g}), or live workers would lose their runs")
    return Settings(home=home, db_url=db_url, heartbeat_s=heartbeat_s, reclaim_after_s=reclaim_after_s)
