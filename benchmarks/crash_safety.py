"""Crash safety: `seqrec run` killed with SIGKILL at seeded random moments, then run again, against one
uninterrupted run of the same study.

    python benchmarks/crash_safety.py [--kills 20] [--seed 0] [--epochs 8] [--keep DIR]

The study (prepare a small synthetic dataset, train SASRec and GRU4Rec, evaluate them under deletion noise) runs
once without interruption; then, for each kill, in a fresh SEQREC_HOME: `seqrec run` starts, is killed after a
delay drawn uniformly over the uninterrupted run's duration, and `seqrec run` runs again to the end. Each time it
checks that the study completes, that every final metric equals the uninterrupted run's, that SQLite's
integrity_check is ok, that no run is left running, and that every registered artifact exists with its recorded
sha256. The table counts, per stage that was running when the kill landed: kills, runs resumed, identical metrics,
integrity failures (must be 0).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# Beats every half second, a silent worker lost after 2 s: the second `seqrec run` takes the killed run over soon.
ENV = {"SEQREC_HEARTBEAT_S": "0.5", "SEQREC_RECLAIM_AFTER_S": "2", "OMP_NUM_THREADS": "1"}


def write_study(folder: Path, epochs: int) -> Path:
    """A ring walk of 60 users over 30 items (each user steps by one or two) and the study over it."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id,item_id,rating,timestamp"]
    for user in range(60):
        start, step = rng.randrange(30), 1 + user % 2
        lines += [f"u{user},i{(start + step * t) % 30},5,{1000 + t}" for t in range(16)]
    (folder / "inter.csv").write_text("\n".join(lines) + "\n")
    (folder / "items.csv").write_text("item_id,title\n" + "".join(f"i{i},Item {i}\n" for i in range(30)))
    path = folder / "experiments.toml"
    path.write_text(f"""
[datasets.ring]
source = "csv"
options = {{ interactions = "{folder / 'inter.csv'}", items = "{folder / 'items.csv'}", k_core = 2, max_len = 6 }}

[experiments.ring-data]
stage = "prepare"
dataset = "ring"

[experiments.ring-train]
stage = "train"
after = ["ring-data"]
dataset = "ring"
seeds = [0, 1]
params = {{ epochs = {epochs}, hidden = 16, batch_size = 16, patience = {epochs} }}
grid = {{ model = ["sasrec", "gru4rec"] }}

[experiments.ring-noise]
stage = "evaluate"
after = ["ring-train"]
seeds = [0, 1]
params = {{ of = "ring-train" }}
grid = {{ noise = ["deletion"] }}
""")
    return path


def seqrec_run(study: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, **ENV, "SEQREC_HOME": str(home)}
    env.pop("SEQREC_DB", None)
    return subprocess.Popen([sys.executable, "-m", "seqrec", "run", "ring-noise", "--file", str(study)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def database(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "seqrec.db", timeout=30)


def final_metrics(home: Path) -> list:
    """Each finished run's kind and final metrics (the last value of each split/key), sorted: run ids, which an
    evaluation's config names, may differ between homes, so runs are compared by what they measured."""
    with database(home) as connection:
        rows = connection.execute("SELECT run.id, run.kind, metric.split, metric.key, metric.value "
                                  "FROM metric JOIN run ON run.id = metric.run_id "
                                  "WHERE run.status = 'finished' ORDER BY metric.id").fetchall()
    finals: dict = {}
    for run_id, kind, split, key, value in rows:
        finals.setdefault((run_id, kind), {})[f"{split}/{key}"] = value
    return sorted((kind, sorted(values.items())) for (_, kind), values in finals.items())


def running_stage(home: Path) -> str:
    """What the killed `seqrec run` was doing: the kind of its running run, or where it stood between runs."""
    if not (home / "seqrec.db").exists():
        return "start-up"
    with database(home) as connection:
        has_runs = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'run'").fetchone()
        if not has_runs:
            return "start-up"
        running = connection.execute("SELECT kind FROM run WHERE status = 'running'").fetchone()
        datasets = connection.execute("SELECT count(*) FROM dataset").fetchone()[0]
    return running[0] if running else ("prepare" if not datasets else "between runs")


def problems(home: Path) -> list[str]:
    """Integrity failures: a corrupt database, a run left running, an artifact missing or changed."""
    from seqrec.store.hashing import file_digest

    found = []
    with database(home) as connection:
        if connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            found.append("integrity_check")
        if connection.execute("SELECT count(*) FROM run WHERE status = 'running'").fetchone()[0]:
            found.append("a run left running")
        artifacts = connection.execute("SELECT path, sha256 FROM artifact").fetchall()
    for path, sha256 in artifacts:
        if not Path(path).exists() or file_digest(Path(path))[0] != sha256:
            found.append(f"artifact {path}")
    return found


def killed_and_rerun(study: Path, home: Path, delay: float) -> tuple[str, bool, int]:
    """Kill `seqrec run` after ``delay`` seconds, run it again; (stage killed in, rerun ok, runs resumed)."""
    process = seqrec_run(study, home)
    time.sleep(delay)
    stage = running_stage(home)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = set()
    if (home / "seqrec.db").exists():
        with database(home) as connection:
            if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'run'").fetchone():
                before = {row[0] for row in connection.execute("SELECT id FROM run WHERE status = 'running'")}
    ok = seqrec_run(study, home).wait() == 0
    with database(home) as connection:
        finished = {row[0] for row in connection.execute("SELECT id FROM run WHERE status = 'finished'")}
    return stage, ok, len(before & finished)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="How many kills in all.")
    parser.add_argument("--seed", type=int, default=0, help="Seeds the moments of the kills.")
    parser.add_argument("--epochs", type=int, default=8, help="Training epochs of each train run.")
    parser.add_argument("--keep", type=Path, help="Keep the homes in this folder (default: a temporary one).")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="seqrec-crash-"))
    study = write_study(root / "data", args.epochs)
    start = time.perf_counter()
    assert seqrec_run(study, root / "reference").wait() == 0, "the uninterrupted study failed"
    duration = time.perf_counter() - start
    reference = final_metrics(root / "reference")
    print(f"uninterrupted study: {duration:.1f} s, {len(reference)} runs with metrics")

    rng = random.Random(args.seed)
    table: dict[str, Counter] = {}
    for kill in range(args.kills):
        home = root / f"kill-{kill}"
        stage, ok, resumed = killed_and_rerun(study, home, rng.uniform(0, duration))
        counts = table.setdefault(stage, Counter())
        counts["kills"] += 1
        counts["resumed"] += resumed
        counts["completed"] += ok
        counts["identical metrics"] += ok and final_metrics(home) == reference
        counts["integrity failures"] += len(problems(home))

    columns = ("kills", "completed", "resumed", "identical metrics", "integrity failures")
    print("| stage killed in | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for stage, counts in sorted(table.items()):
        print(f"| {stage} | " + " | ".join(str(counts[column]) for column in columns) + " |")
    print(f"homes in {root}")


if __name__ == "__main__":
    main()
