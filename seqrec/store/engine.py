"""Opening the database: engine settings for SQLite and PostgreSQL, and Alembic migrations applied on open."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from seqrec.errors import SeqrecError
from seqrec.resources import resource_dir

BUSY_TIMEOUT_MS = 30_000
# Any number that no other program takes: the advisory lock under which one process at a time migrates a
# PostgreSQL database (the folder lock's counterpart for a server).
MIGRATION_LOCK = 0x5E9_4EC


def shown_url(url: str) -> str:
    """The URL as messages show it: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def parse_url(url: str):
    try:
        return make_url(url)
    except ArgumentError:
        raise SeqrecError(f"SEQREC_DB {url!r} is not a database URL (sqlite:///PATH or "
                          "postgresql+psycopg://USER:PASSWORD@HOST:PORT/NAME)") from None


def is_postgresql(url: str) -> bool:
    return parse_url(url).get_backend_name() == "postgresql"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory and non-SQLite databases."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def create_db_engine(url: str, foreign_keys: bool = True, transactional_ddl: bool = False) -> Engine:
    """An engine whose SQLite connections use WAL, enforce foreign keys (unless told not to: migrations) and wait
    for a busy writer. With ``transactional_ddl`` (migrations) a SQLite transaction also holds CREATE/ALTER/DROP:
    Python's sqlite3 driver commits before each of those by itself, so a process killed mid-migration would leave
    tables without the revision that made them, and the next start would fail to create them again."""
    is_sqlite = parse_url(url).get_backend_name() == "sqlite"
    try:
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000} if is_sqlite else {},
                               pool_pre_ping=not is_sqlite)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        extra = " (install seqrec[postgres] for PostgreSQL)" if is_postgresql(url) else ""
        raise SeqrecError(f"SEQREC_DB {shown_url(url)}: no driver for it: {exc}{extra}") from None
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()
            if transactional_ddl:
                dbapi_connection.isolation_level = None  # the driver begins nothing; the begin event below does

        if transactional_ddl:

            @event.listens_for(engine, "begin")
            def _begin(connection):
                connection.exec_driver_sql("BEGIN")

    return engine


def check_sqlite_file(path: Path) -> None:
    """Refuse, without touching it, a file that is not a SQLite database.

    The probe goes through SQLite itself: opening and closing the file with plain Python I/O would drop this
    process's POSIX locks on it, and other processes could then delete the WAL under our open connections.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as connection:
            connection.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError:
        raise SeqrecError(f"{path} is not a SQLite database (set SEQREC_DB or SEQREC_HOME elsewhere)") from None


def stored_revision(url: str) -> str | None:
    """The Alembic revision a database is at, read without changing anything."""
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            return None
        try:
            # A plain connection (not mode=ro): read-only connections cannot read a WAL database that another
            # process is writing. Only SELECTs run here, so nothing changes.
            with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as connection:
                has_table = connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
                ).fetchone()
                row = connection.execute("SELECT version_num FROM alembic_version").fetchone() if has_table else None
        except sqlite3.DatabaseError as exc:
            raise SeqrecError(f"{path} is not a usable SQLite database: {exc}") from None
        return row[0] if row else None
    engine = create_db_engine(url)
    try:
        with connect(engine) as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


@contextmanager
def connect(engine: Engine, transaction: bool = False):
    """A connection (in a transaction if asked), or one line saying why the server cannot be reached."""
    try:
        connection = engine.connect()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise SeqrecError(f"cannot connect to the database {shown_url(str(engine.url))}: {reason}") from None
    with connection:
        if transaction:
            with connection.begin():
                yield connection
        else:
            yield connection


@contextmanager
def folder_lock(path: Path | None):
    """Hold an exclusive lock on the database's folder: processes that open a new database at the same moment (the
    processes of a torchrun job) take turns to migrate it instead of creating the same tables twice."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


def upgrade_database(url: str) -> tuple[str | None, str | None]:
    """Bring the database to the newest schema; returns (revision before, revision after)."""
    if is_postgresql(url):
        return upgrade_postgresql(url)
    path = sqlite_path(url)
    with folder_lock(path):
        return upgrade_unlocked(url, path)


def upgrade_postgresql(url: str) -> tuple[str | None, str | None]:
    """The upgrade in one transaction that holds an advisory lock: workers that start together on a new database
    take turns, and the ones after the first find it at head."""
    engine = create_db_engine(url)
    try:
        with connect(engine, transaction=True) as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            before = MigrationContext.configure(connection).get_current_revision()
            return before, migrate(url, before, connection)
    finally:
        engine.dispose()


def migrate(url: str, before: str | None, connection) -> str | None:
    """Upgrade to head through the given connection (a no-op at head); refuses a newer seqrec's database."""
    config = alembic_config(url)
    script = ScriptDirectory.from_config(config)
    if before is not None:
        try:
            script.get_revision(before)
        except Exception:
            raise SeqrecError(
                f"the database {sqlite_path(url) or shown_url(url)} was written by a newer seqrec (schema revision "
                f"{before}); upgrade seqrec to open it"
            ) from None
    head = script.get_current_head()
    if before != head:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return head


def upgrade_unlocked(url: str, path: Path | None) -> tuple[str | None, str | None]:
    """The upgrade itself, under the caller's folder lock."""
    if path is not None:
        check_sqlite_file(path)
    before = stored_revision(url)
    if before == head_revision(url):
        return before, before
    # Foreign keys off while migrating: batch mode rebuilds a table by copying, dropping and renaming it, and with
    # them on the drop would cascade to every row that references it (SQLite's own rebuild procedure turns them off
    # the same way). They are checked once the schema is at head.
    engine = create_db_engine(url, foreign_keys=False, transactional_ddl=True)
    try:
        with engine.begin() as connection:
            head = migrate(url, before, connection)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() if path else []
            if broken:
                raise SeqrecError(f"upgrading {path} left rows whose references are broken: {broken[:5]}")
    finally:
        engine.dispose()
    return before, head
