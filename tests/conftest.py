"""Every test gets its own SEQREC_HOME, so nothing leaks between tests or into the user's home; tests marked
``backend`` get their database from ``--backend`` (see db_backends.py)."""

import pytest

from db_backends import BACKENDS, fresh_postgres_database


def pytest_addoption(parser):
    parser.addoption("--backend", choices=BACKENDS, default="sqlite",
                     help="the database of the tests marked `backend` (postgresql: set SEQREC_TEST_POSTGRES)")


@pytest.fixture
def backend(request) -> str:
    """The database the tests marked ``backend`` run on."""
    return request.config.getoption("backend")


@pytest.fixture(autouse=True)
def seqrec_home(request, tmp_path, monkeypatch):
    home = tmp_path / "seqrec-home"
    monkeypatch.setenv("SEQREC_HOME", str(home))
    monkeypatch.delenv("SEQREC_DB", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if request.node.get_closest_marker("backend") and request.config.getoption("backend") == "postgresql":
        with fresh_postgres_database() as url:
            monkeypatch.setenv("SEQREC_DB", url)
            yield home
        return
    yield home


@pytest.fixture
def walk(tmp_path):
    """A prepared dataset named walk in this test's store: 40 users stepping round a ring of 24 items by one or two."""
    from recsys_fixtures import make_walk_dataset

    return make_walk_dataset(tmp_path / "raw")


@pytest.fixture(scope="session")
def project_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent
