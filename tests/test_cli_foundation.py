import sqlite3
import subprocess
import sys
import zipfile

import pytest
from typer.testing import CliRunner

from seqrec import __version__
from seqrec.cli import app
from seqrec.llm.prompts import render_prompt
from seqrec.errors import SeqrecError
from seqrec.store import open_store

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def test_version_and_info(seqrec_home):
    assert invoke("--version").stdout.strip() == f"seqrec {__version__}"
    result = invoke("info")
    assert result.exit_code == 0
    assert str(seqrec_home) in result.stdout and "torch_threads" in result.stdout


def test_db_upgrade_then_status():
    result = invoke("db", "upgrade")
    assert result.exit_code == 0 and "upgraded from empty to 0003" in result.stdout
    assert "already at revision 0003" in invoke("db", "upgrade").stdout
    status = invoke("db", "status")
    assert status.exit_code == 0 and "revision: 0003" in status.stdout and "run" in status.stdout


def test_runs_list_show_delete():
    store = open_store()
    assert "no runs yet" in invoke("runs", "list").stdout
    with store.start_run("train", {"model": "sasrec"}, seed=0, dataset="ml-100k", experiment="demo") as run:
        run.log_metrics({"ndcg@10": 0.123456, "recall@10": 0.2}, split="test")
    listing = invoke("runs", "list", "--kind", "train", "--experiment", "demo")
    assert listing.exit_code == 0
    assert "0.1235" in listing.stdout and "demo" in listing.stdout and "finished" in listing.stdout
    assert "no runs yet" in invoke("runs", "list", "--kind", "embed").stdout
    shown = invoke("runs", "show", str(run.id))
    assert shown.exit_code == 0 and "sasrec" in shown.stdout and "ndcg@10" in shown.stdout
    assert invoke("runs", "delete", str(run.id), input="n\n").exit_code == 1  # declined: nothing deleted
    assert store.list_runs()
    assert invoke("runs", "delete", str(run.id), "--yes").exit_code == 0
    assert store.list_runs() == []


def test_unknown_run_id_is_one_line_and_exit_2():
    result = invoke("runs", "show", "42")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: no run with id 42 (see `seqrec runs list`)"


def test_unknown_status_is_rejected():
    result = invoke("runs", "list", "--status", "sleeping")
    assert result.exit_code == 2 and "unknown status" in result.stderr


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(seqrec_home):
    seqrec_home.mkdir(parents=True)
    db = seqrec_home / "seqrec.db"
    db.write_text("this is a CSV, not a database\n")
    result = invoke("runs", "list")
    assert result.exit_code == 2 and "is not a SQLite database" in result.stderr
    assert "Traceback" not in result.output
    assert db.read_text() == "this is a CSV, not a database\n"


def test_a_database_from_a_newer_seqrec_is_refused_and_left_alone(seqrec_home):
    open_store()
    db = seqrec_home / "seqrec.db"
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00dfeed9999'")
    before = db.read_bytes()
    result = invoke("db", "upgrade")
    assert result.exit_code == 2 and "newer seqrec" in result.stderr and "f00dfeed9999" in result.stderr
    assert db.read_bytes() == before


def test_an_unwritable_home_is_one_clear_line(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SEQREC_HOME", str(blocker / "home"))
    result = invoke("runs", "list")
    assert result.exit_code == 2 and "is not writable" in result.stderr


def test_seqrec_db_overrides_the_database_location(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_DB", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert invoke("db", "upgrade").exit_code == 0
    assert (tmp_path / "elsewhere.db").exists()


def test_prompt_templates_render_and_missing_variables_are_errors():
    text = render_prompt("rerank", history=["Toy Story (1995)"], candidates=["Heat (1995)", "Babe (1995)"],
                         labels=["1", "2"], mode="generate", top_k=2)
    assert "Toy Story (1995)" in text and "[2] Babe (1995)" in text and "Sequential coherence" in text
    with pytest.raises(SeqrecError, match="candidates"):
        render_prompt("rerank", history=[], top_k=1)
    with pytest.raises(SeqrecError, match="shipped templates: .*rerank"):
        render_prompt("no-such-template")


def test_the_wheel_ships_migrations_and_templates_and_works_from_elsewhere(tmp_path, project_root):
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(project_root)],
                   check=True, capture_output=True)
    (wheel,) = wheel_dir.glob("seqrec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "seqrec/migrations/env.py" in names and "seqrec/templates/rerank.jinja" in names
    assert any(name.startswith("seqrec/migrations/versions/0001") for name in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "SEQREC_HOME": str(tmp_path / "home2"),
           "PYTHONNOUSERSITE": "1"}
    script = ("import seqrec.resources as r, seqrec.cli as c, sys; "
              "assert str(r.resource_dir('migrations')).startswith(sys.argv[1]), r.resource_dir('migrations'); "
              "sys.argv = ['seqrec', 'db', 'upgrade']; c.run()")
    result = subprocess.run([sys.executable, "-c", script, str(target)], cwd=elsewhere, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "upgraded from empty to 0003" in result.stdout


def test_every_command_is_a_plain_function_too():
    import seqrec

    for name in seqrec.API:
        assert callable(getattr(seqrec, name)), name
    assert seqrec.db_status()["up_to_date"] is not None


def test_help_texts_survive_rich_markup():
    """Help is rendered as rich markup, where "[word@...]" or "[bold]" would be read as a tag and vanish: every
    help text must print as written (a literal bracket is escaped as "\\[")."""
    import typer.main
    from rich.text import Text

    def commands(command, path=()):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, (*path, name))

    for path, command in commands(typer.main.get_command(app)):
        for text in [command.help or "", *(getattr(param, "help", None) or "" for param in command.params)]:
            assert Text.from_markup(text).plain == text.replace("\\[", "["), (path, text)


def test_a_full_or_read_only_disk_is_told_in_one_line_and_other_errors_are_not_taken_for_one(tmp_path, monkeypatch):
    import errno

    from seqrec.errors import storage_failure

    assert storage_failure(OSError(errno.ENOSPC, "No space left on device", "/home/x/ckpt.pt")) == \
        "no space left on the device writing /home/x/ckpt.pt"
    torch_message = RuntimeError("[enforce fail at inline_container.cc:747] . open file failed with strerror: "
                                 "Read-only file system")
    assert storage_failure(torch_message) == "the file system is read-only"
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as cause:
            raise RuntimeError("saving failed") from cause
    except RuntimeError as chained:
        assert storage_failure(chained) == "the disk quota is exceeded"
    monkeypatch.setenv("SEQREC_HOME", str(tmp_path / "home"))  # (not made yet: its parent's disk is asked)
    writer_failure = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert storage_failure(writer_failure).startswith("a file could not be written")  # this disk has room
    assert storage_failure(ValueError("shapes do not match")) is None
    assert storage_failure(OSError(errno.ENOENT, "No such file or directory", "x")) is None
