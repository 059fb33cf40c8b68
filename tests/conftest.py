"""Every test gets its own SEQREC_HOME, so nothing leaks between tests or into the user's home."""

import pytest


@pytest.fixture(autouse=True)
def seqrec_home(tmp_path, monkeypatch):
    home = tmp_path / "seqrec-home"
    monkeypatch.setenv("SEQREC_HOME", str(home))
    monkeypatch.delenv("SEQREC_DB", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def project_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent
