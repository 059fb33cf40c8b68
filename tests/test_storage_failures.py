"""A disk that fills up, or a SEQREC_HOME that turns read-only, while `seqrec run` trains: the command stops with one
clear line, the runs finished before are untouched (database intact, every artifact there with its sha256), and once
the disk takes writes again the same command finishes the study.

The disk is a small tmpfs, and read-only is a read-only bind mount over SEQREC_HOME; both need the right to mount
(root, as in CI). Elsewhere these tests are skipped with that reason."""

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from recsys_fixtures import make_walk_dataset

from seqrec.store.hashing import file_digest

# beats every half second, a silent worker taken over after 2 s: the second `seqrec run` resumes the stopped run soon
ENV = {"SEQREC_HEARTBEAT_S": "0.5", "SEQREC_RECLAIM_AFTER_S": "2", "OMP_NUM_THREADS": "1"}


def mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True, capture_output=True)


@pytest.fixture
def disk(tmp_path):
    """A 64 MB file system of its own."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder))
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("mounting a small file system needs the right to mount (root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def study(tmp_path) -> Path:
    raw = tmp_path / "raw"
    make_walk_dataset(raw, name="unused", users=60, items=40, length=20)  # (writes the csv files the study reads)
    path = tmp_path / "experiments.toml"
    path.write_text(f"""
[datasets.walk]
source = "csv"
options = {{ interactions = "{raw / 'inter.csv'}", items = "{raw / 'items.csv'}", k_core = 2, max_len = 8 }}

[experiments.data]
stage = "prepare"
dataset = "walk"

[experiments.first]
stage = "train"
after = ["data"]
dataset = "walk"
seeds = [0]
params = {{ model = "sasrec", hidden = 64, epochs = 2, batch_size = 16 }}

[experiments.long]
stage = "train"
after = ["first"]
dataset = "walk"
seeds = [0]
params = {{ model = "sasrec", hidden = 64, epochs = 30, patience = 30, batch_size = 16 }}
""")
    return path


def seqrec_run(path: Path, home: Path, experiment: str) -> subprocess.Popen:
    env = {**os.environ, **ENV, "SEQREC_HOME": str(home)}
    env.pop("SEQREC_DB", None)
    return subprocess.Popen([sys.executable, "-m", "seqrec", "run", experiment, "--file", str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(path: Path, home: Path, experiment: str) -> None:
    process = seqrec_run(path, home, experiment)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output


def query(home: Path, sql: str) -> list:
    with closing(sqlite3.connect(f"file:{home / 'seqrec.db'}?mode=ro", uri=True, timeout=30)) as connection:
        return connection.execute(sql).fetchall()


def wait_for_epochs(home: Path, experiment: str, epochs: int) -> None:
    """Until ``experiment``'s run has logged validation metrics for ``epochs`` epochs (so it has saved checkpoints)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        rows = query(home, f"SELECT count(DISTINCT metric.step) FROM metric JOIN run ON run.id = metric.run_id "
                           f"WHERE run.experiment = '{experiment}' AND metric.split = 'valid'")
        if rows and rows[0][0] >= epochs:
            return
        time.sleep(0.2)
    raise AssertionError(f"{experiment} logged fewer than {epochs} epochs in 300 s")


def intact(home: Path, before: list) -> None:
    """The database is sound and every artifact registered before is there, unchanged."""
    assert query(home, "PRAGMA integrity_check") == [("ok",)]
    for path, sha256 in before:
        assert Path(path).exists() and file_digest(Path(path))[0] == sha256, path


def stopped_clearly(process: subprocess.Popen, reason: str) -> None:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output
    assert f"error: {reason}" in " ".join(output.split()), output
    assert "Traceback" not in output and "run the command again to finish the rest" in " ".join(output.split())


def finished_again(path: Path, home: Path) -> None:
    """The same command, run again, finishes the study: the stopped run is taken over and resumed when the disk
    refused even the line that marks it failed, or else trained again as a new run; no run is left running."""
    finished(path, home, "long")
    statuses = query(home, "SELECT status FROM run WHERE experiment = 'long' ORDER BY id")
    assert statuses in ([("finished",)], [("failed",), ("finished",)]), statuses
    assert query(home, "SELECT count(*) FROM run WHERE status = 'running'") == [(0,)]


def test_torch_writing_onto_a_full_disk_is_told_as_one(disk, monkeypatch):
    """torch's file writer loses the errno ("unexpected pos …"); the free space under SEQREC_HOME tells."""
    import torch

    from seqrec.errors import storage_failure

    monkeypatch.setenv("SEQREC_HOME", str(disk / "home"))
    with pytest.raises(RuntimeError) as failure:
        torch.save(torch.zeros(32 << 20), disk / "weights.pt")  # 128 MB onto 64 MB
    assert storage_failure(failure.value) == "no space left on the device"


def test_a_disk_that_fills_up_mid_run_stops_it_clearly_and_loses_nothing(tmp_path, disk):
    path, home = study(tmp_path), disk / "home"
    finished(path, home, "first")
    before = query(home, "SELECT path, sha256 FROM artifact")
    assert before
    process = seqrec_run(path, home, "long")
    wait_for_epochs(home, "long", 2)
    filler = disk / "filler"
    with open(filler, "wb") as out:  # take every free block
        try:
            while True:
                out.write(b"\0" * (1 << 20))
                out.flush()
        except OSError:
            pass
    stopped_clearly(process, "no space left on the device")
    intact(home, before)
    filler.unlink()
    finished_again(path, home)
    intact(home, before)


def test_a_seqrec_home_that_turns_read_only_mid_run_stops_it_clearly_and_loses_nothing(tmp_path, disk):
    path, home = study(tmp_path), disk / "home"
    finished(path, home, "first")
    before = query(home, "SELECT path, sha256 FROM artifact")
    process = seqrec_run(path, home, "long")
    wait_for_epochs(home, "long", 2)
    mount("--bind", str(home), str(home))  # the same folder over itself, then made read-only
    mount("-o", "remount,ro,bind", str(home))
    try:
        stopped_clearly(process, "the file system is read-only")
        intact(home, before)
    finally:
        subprocess.run(["umount", str(home)], check=True)
    finished_again(path, home)
    intact(home, before)
