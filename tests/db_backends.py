"""The databases that tests marked ``backend`` run on: SQLite (a file in the test's SEQREC_HOME, the default) or,
with ``pytest --backend postgresql``, a fresh database per test on the real PostgreSQL server that
SEQREC_TEST_POSTGRES names (for example ``postgresql+psycopg://seqrec@127.0.0.1:55432/postgres``)."""

import os
import uuid
from contextlib import contextmanager

SERVER_ENV = "SEQREC_TEST_POSTGRES"
BACKENDS = ("sqlite", "postgresql")


def server_url():
    from sqlalchemy.engine import make_url

    server = os.environ.get(SERVER_ENV)
    if not server:
        raise RuntimeError(f"--backend postgresql needs {SERVER_ENV}, the URL of a PostgreSQL server to test on")
    return make_url(server)


def admin_connection():
    """An autocommit psycopg connection to the server's maintenance database (CREATE / DROP DATABASE)."""
    import psycopg

    url = server_url()
    return psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)


@contextmanager
def fresh_postgres_database():
    """The SQLAlchemy URL of a new, empty database, dropped (with its connections) when the block ends."""
    name = f"seqrec_test_{uuid.uuid4().hex[:16]}"
    with admin_connection() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url().set(database=name).render_as_string(hide_password=False)
    finally:
        from seqrec.store.store import _open_stores

        for url in [url for url in _open_stores if name in url]:
            _open_stores.pop(url).engine.dispose()
        with admin_connection() as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
