"""One study, many workers: `seqrec run` processes sharing one database split its points, each done once, and a
worker killed with SIGKILL has its run taken over and resumed by another."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from test_experiments_run import experiments_file
from seqrec.store import open_store

pytestmark = [pytest.mark.backend, pytest.mark.slow]
EPOCHS = 20
# Workers beat every half second and give a silent one 4 s: long enough on a loaded machine, short for a test. One
# thread each: three workers with a thread per core would spin against each other on a small machine.
WORKER_ENV = {"SEQREC_HEARTBEAT_S": "0.5", "SEQREC_RECLAIM_AFTER_S": "4", "OMP_NUM_THREADS": "1"}


def study_file(tmp_path):
    return experiments_file(tmp_path, study=f"{{ epochs = {EPOCHS}, hidden = 16, batch_size = 8, patience = {EPOCHS} }}")


def start_worker(path, log, **env):
    return subprocess.Popen([sys.executable, "-m", "seqrec", "run", "study", "--file", str(path)],
                            env={**os.environ, **WORKER_ENV, **env}, stdout=log, stderr=subprocess.STDOUT)


def wait_all(workers, logs):
    for worker in workers:
        worker.wait(timeout=600)
    return [log.read_text() for log in logs]


def finished_train_runs():
    runs = open_store().list_runs(kind="train", limit=None)
    assert {run.status for run in runs} == {"finished"}
    return runs


def test_three_workers_split_a_study_and_run_every_point_once(tmp_path):
    path = study_file(tmp_path)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [start_worker(path, log.open("w")) for log in logs]
    outputs = wait_all(workers, logs)
    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    store = open_store()
    runs = finished_train_runs()
    assert len(runs) == 4 and len({run.config_hash for run in runs}) == 4
    assert len(store.list_datasets()) == 2  # walk, prepared once, and scratch
    assert store.claims() == []  # every claim went with the end of its run


def test_a_worker_killed_mid_run_has_its_run_resumed_by_another_with_the_same_metrics(tmp_path, monkeypatch):
    path = study_file(tmp_path)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [start_worker(path, log.open("w")) for log in logs]
    store = open_store()
    victim = None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline:
        for run in store.list_runs(kind="train", status="running", limit=None):
            loop = store.run_dir(run.id) / "checkpoint" / "loop.json"
            try:
                epoch = json.loads(loop.read_text())["epoch"]
            except (OSError, ValueError):
                continue
            if 2 <= epoch < EPOCHS - 4:
                victim = run
                break
        time.sleep(0.02)
    assert victim is not None, "no train run was caught between its checkpoints"
    (killed,) = [worker for worker in workers if worker.pid == victim.pid]
    os.kill(killed.pid, signal.SIGKILL)
    outputs = wait_all(workers, logs)
    assert killed.returncode == -signal.SIGKILL
    assert sorted(worker.returncode for worker in workers if worker is not killed) == [0, 0], outputs

    runs = finished_train_runs()
    assert len(runs) == 4 and len({run.config_hash for run in runs}) == 4
    resumed = store.get_run(victim.id)
    assert resumed.status == "finished" and resumed.pid != victim.pid
    assert store.claims() == []
    shared = {run.config_hash: store.final_metrics(run.id)["test"] for run in runs}

    # The same study run by one uninterrupted worker, in a database of its own.
    home = tmp_path / "alone"
    alone_env = {"SEQREC_HOME": str(home), "SEQREC_DB": f"sqlite:///{home / 'seqrec.db'}"}
    assert wait_all([start_worker(path, (tmp_path / "alone.log").open("w"), **alone_env)], []) == []
    for key, value in alone_env.items():
        monkeypatch.setenv(key, value)
    alone = open_store()
    by_one = {run.config_hash: alone.final_metrics(run.id)["test"] for run in alone.list_runs(kind="train", limit=None)}
    assert by_one.keys() == shared.keys()
    for config_hash, metrics in shared.items():
        assert metrics == pytest.approx(by_one[config_hash], abs=1e-6)
