import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from alembic import command

from seqrec.errors import SeqrecError
from seqrec.settings import get_settings
from seqrec.store import Run, config_hash, open_store
from seqrec.store.models import utcnow
from seqrec.store.engine import alembic_config, create_db_engine, head_revision, upgrade_database
from seqrec.store.tracker import SeqrecTracker


@pytest.mark.backend
def test_migrations_build_the_schema_and_match_the_models(seqrec_home, backend):
    store = open_store()
    assert store.db_path == (seqrec_home / "seqrec.db" if backend == "sqlite" else None)
    assert set(store.table_counts()) == {"dataset", "model", "run", "metric", "artifact", "run_input"}
    config = alembic_config(store.url)
    command.check(config)  # raises if the models and the migrations disagree


@pytest.mark.backend
def test_a_deleted_runs_id_is_never_handed_out_again():
    store = open_store()
    with store.start_run("train", {"n": 1}) as first:
        pass
    with store.start_run("train", {"n": 2}) as newest:
        pass
    store.delete_run(newest.id)
    with store.start_run("train", {"n": 3}) as after:
        pass
    assert first.id < newest.id < after.id


RUN_ROW = ("INSERT INTO run (kind, status, config, config_hash, started_at) "
           "VALUES ('train', 'finished', '{}', 'h', '2026-01-01 00:00:00')")


def test_upgrading_a_first_schema_database_keeps_every_row(tmp_path):
    """Revision 0002 rebuilds the run table; with foreign keys on, dropping the old table would have deleted every
    metric (ON DELETE CASCADE). A database written by the first schema keeps its rows and stops reusing ids."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_db_engine(url)  # foreign keys on, as every seqrec connection has them
    with engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(RUN_ROW)
        connection.exec_driver_sql("INSERT INTO metric (run_id, key, value, split, created_at) "
                                   "VALUES (1, 'loss', 0.5, 'train', '2026-01-01 00:00:00')")
    engine.dispose()

    assert upgrade_database(url) == ("0001", head_revision(url))
    engine = create_db_engine(url)
    with engine.begin() as connection:
        assert connection.exec_driver_sql("SELECT run_id, value FROM metric").fetchall() == [(1, 0.5)]
        connection.exec_driver_sql(RUN_ROW)
        connection.exec_driver_sql("DELETE FROM run WHERE id = 2")
        connection.exec_driver_sql(RUN_ROW)
        assert connection.exec_driver_sql("SELECT id FROM run ORDER BY id").scalars().all() == [1, 3]
    engine.dispose()


@pytest.mark.backend
def test_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path):
    """The processes of a torchrun job (or workers starting together) open the store at once; one migrates, the
    others find it at head."""
    url = get_settings().db_url
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(upgrade_database, [url] * 4)
    head = head_revision(url)
    assert sorted(results, key=lambda result: result[0] is not None) == [(None, head)] + [(head, head)] * 3


def test_sqlite_is_opened_with_wal_foreign_keys_and_busy_timeout():
    store = open_store()
    with create_db_engine(store.url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


@pytest.mark.backend
def test_a_finished_run_keeps_config_metrics_and_artifacts(tmp_path):
    store = open_store()
    artifact_file = tmp_path / "emb.npy"
    artifact_file.write_bytes(b"0123456789")
    with store.start_run("train", {"lr": 1e-3, "model": "sasrec"}, seed=1, dataset="ml-100k") as run:
        run.log_metrics({"loss": 2.0}, step=1, split="train")
        run.log_metrics({"loss": 1.5}, step=2, split="train")
        run.log_metrics({"ndcg@10": 0.25}, split="test")
        artifact = run.log_artifact(artifact_file, kind="embeddings")
    row = store.get_run(run.id)
    assert row.status == "finished" and row.duration_s >= 0 and row.finished_at is not None
    assert row.config_hash == config_hash({"model": "sasrec", "lr": 1e-3})
    assert store.final_metrics(run.id) == {"train": {"loss": 1.5}, "test": {"ndcg@10": 0.25}}
    assert artifact.bytes == 10 and len(artifact.sha256) == 64
    assert store.find_run(row.config_hash, kind="train").id == run.id


@pytest.mark.backend
def test_a_failing_run_is_stored_as_failed_with_its_message():
    store = open_store()
    with pytest.raises(ValueError):
        with store.start_run("train", {"x": 1}) as run:
            raise ValueError("learning rate exploded")
    row = store.get_run(run.id)
    assert row.status == "failed"
    assert row.error.startswith("ValueError: learning rate exploded")


@pytest.mark.backend
def test_an_interrupted_run_is_stored_as_interrupted_and_can_be_resumed():
    store = open_store()
    with pytest.raises(KeyboardInterrupt):
        with store.start_run("train", {"x": 2}) as run:
            raise KeyboardInterrupt
    assert store.get_run(run.id).status == "interrupted"
    with store.start_run("train", {"x": 2}, resume=run.id) as resumed:
        assert resumed.id == run.id
    assert store.get_run(run.id).status == "finished"
    with pytest.raises(SeqrecError, match="finished"):
        with store.start_run("train", {"x": 2}, resume=run.id):
            pass


@pytest.mark.backend
def test_sigterm_marks_the_run_interrupted(seqrec_home):
    open_store()
    script = textwrap.dedent("""
        import time
        from seqrec.store import open_store
        with open_store().start_run("train", {"sleep": True}) as run:
            print(run.id, flush=True)
            time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ)
    run_id = int(process.stdout.readline())
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert open_store().get_run(run_id).status == "interrupted"


@pytest.mark.backend
def test_lineage_links_runs_and_artifacts(tmp_path):
    store = open_store()
    file = tmp_path / "m.bin"
    file.write_bytes(b"x")
    with store.start_run("embed", {"m": 1}) as producer:
        artifact = producer.log_artifact(file, kind="item-embeddings")
    with store.start_run("train", {"m": 2}, inputs=[artifact]) as consumer:
        pass
    assert [link.artifact_id for link in store.inputs(consumer.id)] == [artifact.id]
    assert [link.run_id for link in store.consumers(producer.id)] == [consumer.id]
    with pytest.raises(SeqrecError, match="no run with id 999"):
        store.start_run("train", {}, inputs=[999]).__enter__()


@pytest.mark.backend
def test_a_reader_lists_runs_while_another_process_writes_metrics(seqrec_home):
    store = open_store()
    writer = textwrap.dedent("""
        from seqrec.store import open_store
        with open_store().start_run("train", {"writer": True}) as run:
            for step in range(300):
                run.log_metrics({"loss": 1.0 / (step + 1), "ndcg@10": step / 300}, step=step, split="train")
    """)
    process = subprocess.Popen([sys.executable, "-c", writer], env=os.environ)
    reads = 0
    deadline = time.time() + 120
    while process.poll() is None and time.time() < deadline:
        runs = store.list_runs()
        for run in runs:
            store.final_metrics(run.id)
        reads += 1
    assert process.wait(timeout=120) == 0
    assert reads > 0
    (run,) = store.list_runs()
    assert run.status == "finished"
    assert len(store.metrics(run.id, key="loss")) == 300


@pytest.mark.backend
def test_accelerate_tracker_writes_into_the_run():
    from accelerate import Accelerator

    store = open_store()
    with store.start_run("train", {"tracker": True}) as run:
        accelerator = Accelerator(cpu=True, log_with=[SeqrecTracker(run)])
        accelerator.init_trackers("seqrec")
        accelerator.log({"loss": 0.5, "note": "text is skipped"}, step=3, log_kwargs={"seqrec": {"split": "train"}})
        accelerator.end_training()
    (metric,) = store.metrics(run.id)
    assert (metric.key, metric.value, metric.step, metric.split) == ("loss", 0.5, 3, "train")


def test_a_database_server_that_cannot_be_reached_is_one_line_exit_2_without_its_password(monkeypatch):
    pytest.importorskip("psycopg")
    from typer.testing import CliRunner

    from seqrec.cli import app

    monkeypatch.setenv("SEQREC_DB", "postgresql+psycopg://seqrec:secret@127.0.0.1:9/nothing")
    result = CliRunner().invoke(app, ["runs", "list"])
    assert result.exit_code == 2
    assert "cannot connect to the database postgresql+psycopg://seqrec:***@127.0.0.1:9/nothing" in result.output
    assert "secret" not in result.output and len(result.output.strip().splitlines()) <= 3


def claim_all(keys):
    """One worker's claims, taken one at a time until none is left (run in a forked process)."""
    store = open_store()
    claimed = []
    while (key := store.claim_next("study", {key: f"point {key}" for key in keys}, "host", os.getpid())) is not None:
        claimed.append(key)
        time.sleep(0.01)
    return claimed


@pytest.mark.backend
def test_workers_claiming_at_once_get_every_point_exactly_once():
    open_store()  # migrated before the workers fork
    keys = [f"k{i}" for i in range(24)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        claims = pool.map(claim_all, [keys] * 3)
    assert sorted(key for claimed in claims for key in claimed) == sorted(keys)


@pytest.mark.backend
def test_a_held_point_is_taken_over_only_once_its_worker_stops_beating(monkeypatch):
    store = open_store()
    assert store.claim_next("study", {"k1": "seed=0"}, "a", 1) == "k1"
    assert store.claim_next("study", {"k1": "seed=0"}, "b", 2) is None
    monkeypatch.setenv("SEQREC_HEARTBEAT_S", "0.01")
    monkeypatch.setenv("SEQREC_RECLAIM_AFTER_S", "0.2")
    impatient = open_store()
    time.sleep(0.3)
    assert impatient.claim_next("study", {"k1": "seed=0"}, "b", 2) == "k1"
    store.release_claim("k1", "a", 1)  # the stopped worker's release no longer touches it
    assert [(claim.key, claim.host, claim.pid) for claim in store.claims()] == [("k1", "b", 2)]


@pytest.mark.backend
def test_a_point_claimed_under_another_config_is_refused_and_nothing_changes():
    store = open_store()
    assert store.claim_next("study", {"k1": "seed=0"}, "a", 1) == "k1"
    with pytest.raises(SeqrecError, match="seed=0: another worker .* another config"):
        store.claim_next("study", {"k2": "seed=0", "k3": "seed=1"}, "b", 2)
    assert [claim.key for claim in store.claims()] == ["k1"]


@pytest.mark.backend
def test_a_running_run_whose_worker_stopped_beating_is_closed_as_interrupted(monkeypatch):
    monkeypatch.setenv("SEQREC_HEARTBEAT_S", "0.01")
    monkeypatch.setenv("SEQREC_RECLAIM_AFTER_S", "0.2")
    store = open_store()
    lost = store.create_run(Run(kind="train", status="running", config={}, config_hash="h", host="gone", pid=7,
                                heartbeat_at=utcnow() - timedelta(seconds=1)))
    with store.start_run("train", {"alive": True}) as alive:
        time.sleep(0.3)  # longer than the reclaim time: only its beats keep it alive
        assert store.interrupt_lost_runs() == [lost.id]
        assert store.get_run(alive.id).status == "running"
    lost = store.get_run(lost.id)
    assert lost.status == "interrupted" and "its worker gone:7 stopped beating" in lost.error


@pytest.mark.backend
def test_runs_list_and_show_name_the_worker_of_a_running_run_and_its_last_beat():
    import socket

    from typer.testing import CliRunner

    from seqrec.cli import app

    with open_store().start_run("train", {"listed": True}) as run:
        listed = CliRunner().invoke(app, ["runs", "list"], env={"COLUMNS": "200"})
        shown = CliRunner().invoke(app, ["runs", "show", str(run.id)], env={"COLUMNS": "200"})
    worker = f"{socket.gethostname()}:{os.getpid()}, beat "
    assert worker in listed.output and f"worker {worker}" in shown.output
    assert "worker" not in CliRunner().invoke(app, ["runs", "list"], env={"COLUMNS": "200"}).output


@pytest.mark.backend
def test_a_database_of_a_newer_seqrec_is_refused_by_every_command_and_left_as_it_was():
    """On either backend: a schema revision this seqrec does not know means another (newer) seqrec wrote the
    database; commands refuse it in one line and change nothing in it."""
    from sqlalchemy import text

    store = open_store()
    with store.start_run("train", {"n": 1}):
        pass
    engine = create_db_engine(store.url)

    def state():
        with engine.connect() as connection:
            return (connection.execute(text("SELECT version_num FROM alembic_version")).all(),
                    connection.execute(text("SELECT id, kind, status FROM run")).all())

    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed9999'"))
    before = state()
    for command_line in (["db", "upgrade"], ["runs", "list"], ["train", "sasrec", "--dataset", "walk"]):
        result = subprocess.run([sys.executable, "-m", "seqrec", *command_line], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2, (command_line, result.stderr)
        assert "newer seqrec" in result.stderr and "f00dfeed9999" in result.stderr
        assert "Traceback" not in result.stderr and "password" not in result.stderr.lower()
    assert state() == before
    engine.dispose()


@pytest.mark.backend
def test_a_migration_stopped_midway_leaves_no_half_made_schema_and_the_next_start_builds_it(monkeypatch):
    """A process killed while it builds the schema (here: an interrupt at the third table) must not leave tables
    without the revision that made them: on SQLite that needs DDL inside the migration's transaction."""
    from alembic.operations import Operations
    from sqlalchemy import inspect

    url = get_settings().db_url
    get_settings().ensure_home()
    create_table = Operations.create_table
    made = []

    def interrupted_at_the_third(self, name, *columns, **options):
        made.append(name)
        if len(made) == 3:
            raise KeyboardInterrupt
        return create_table(self, name, *columns, **options)

    monkeypatch.setattr(Operations, "create_table", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        upgrade_database(url)
    monkeypatch.setattr(Operations, "create_table", create_table)
    engine = create_db_engine(url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()
    assert upgrade_database(url) == (None, head_revision(url))
    assert set(open_store().table_counts()) == {"dataset", "model", "run", "metric", "artifact", "run_input"}
