"""Every test gets its own SEQREC_HOME, so nothing leaks between tests or into the user's home."""

import pytest


@pytest.fixture(autouse=True)
def seqrec_home(tmp_path, monkeypatch):
    home = tmp_path / "seqrec-home"
    monkeypatch.setenv("SEQREC_HOME", str(home))
    monkeypatch.delenv("SEQREC_DB", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def walk(tmp_path):
    """A prepared dataset named walk in this test's store: 40 users stepping round a ring of 24 items by one or two."""
    from recsys_fixtures import make_walk_dataset

    return make_walk_dataset(tmp_path / "raw")


@pytest.fixture(scope="session")
def project_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent
