"""Where seqrec keeps its things: one home folder, overridable by environment variables.

``SEQREC_HOME`` (default ``./.seqrec``) holds the database, prepared data, pulled models and run
artifacts; ``SEQREC_DB`` overrides the database URL (any SQLAlchemy URL).
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


def get_settings() -> Settings:
    """Read the settings from the environment each time (tests and users change them between calls)."""
    home = Path(os.environ.get("SEQREC_HOME", ".seqrec")).expanduser().absolute()
    db_url = os.environ.get("SEQREC_DB") or f"sqlite:///{home / 'seqrec.db'}"
    return Settings(home=home, db_url=db_url)
