"""Crash safety: `seqrec run` killed with SIGKILL at seeded random moments of every stage, then run again, against
one uninterrupted run of the same study.

    python benchmarks/crash_safety.py [--kills 20] [--seed 0] [--stages prepare,train,...] [--keep DIR]

(``--stages`` runs the uninterrupted study only as far as the last stage named.)

The study runs every stage seqrec has, on a ring walk of 40 users over 24 titled items and a tiny random Llama
(built here, 4,096-token context): prepare, embed, the three LLM2Rec steps (csft, mntp, ic), distill (the ic model
into the base model), train (SASRec on the distilled embeddings), evaluate (deletion noise), rerank (logprobs), profile
generation, profile-embed, train again (SASRec distilled from the profiles, sampled candidates), and both DELRec
stages. The uninterrupted run goes one experiment at a time in one SEQREC_HOME, timing each stage's run and keeping
a copy of the home after each. Then, for each stage and each kill: the home is put back as it stood before the stage
(in the same place, so stored paths hold), `seqrec run <stage>` starts and is killed a delay after its run appears,
drawn uniformly over the uninterrupted run's duration, and `seqrec run <stage>` runs again to the end. Each time it
checks that the stage completes, that every finished run's final metrics and every artifact's sha256 equal the
uninterrupted run's (runs matched by kind and config hash), that SQLite's integrity_check is ok, that no run is left
running, and that every registered artifact exists with its recorded sha256. The table counts, per stage: kills,
where they landed (in the stage's run, or before it appeared), completed, the killed run resumed under its own id,
identical metrics, identical artifacts, integrity failures (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Beats every half second, a silent worker lost after 2 s: the second `seqrec run` takes the killed run over soon.
ENV = {"SEQREC_HEARTBEAT_S": "0.5", "SEQREC_RECLAIM_AFTER_S": "2", "OMP_NUM_THREADS": "1",
       "TOKENIZERS_PARALLELISM": "false"}
LABELS = "A,B,D,G,L"  # single tokens of the tiny tokenizer, with and without a leading space
TEMPLATE = ("History: {% for title in history %}{{ title }}; {% endfor %}\n"
            "{% for title in candidates %}[{{ labels[loop.index0] }}] {{ title }}\n{% endfor %}Best:")
CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<s>assistant:{% endif %}")
LLM2REC = "epochs = 1, batch_size = 6, lr = 0.003, max_examples = 24, valid_examples = 6"
DELREC = "candidates = 5, max_examples = 8, valid_examples = 4, epochs = 1, batch_size = 4, warmup_steps = 1"

# (label, experiment): each experiment comes after the one before it.
STAGES = [("prepare", "ring-data"), ("embed", "ring-embed"), ("llm2rec csft", "ring-csft"),
          ("llm2rec mntp", "ring-mntp"), ("llm2rec ic", "ring-ic"), ("distill", "ring-distill"),
          ("train", "ring-train"), ("evaluate", "ring-noise"), ("rerank", "ring-rerank"),
          ("profiles", "ring-profiles"), ("profile-embed", "ring-profile-embed"),
          ("train with profiles", "ring-teacher"), ("delrec-distill", "ring-soft"), ("delrec-finetune", "ring-tuned")]


def write_study(folder: Path) -> Path:
    """The ring walk (each user steps by one or two), the tiny model, the prompt and the study over them."""
    from seqrec.llm.tiny import build_tiny_model

    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id,item_id,rating,timestamp"]
    for user in range(40):
        start, step = rng.randrange(24), 1 + user % 2
        lines += [f"u{user},i{(start + step * t) % 24},{1 + (user + t) % 5},{1000 + t}" for t in range(12)]
    (folder / "inter.csv").write_text("\n".join(lines) + "\n")
    (folder / "items.csv").write_text("item_id,title\n" + "".join(f"i{i},Item {i} ({1990 + i})\n" for i in range(24)))
    from transformers import AutoTokenizer

    model = build_tiny_model(folder / "tiny", "llama")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))  # profile prompts
    tokenizer = AutoTokenizer.from_pretrained(model)  # profiles are written through a chat template
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(model)
    (folder / "rerank.jinja").write_text(TEMPLATE)
    path = folder / "experiments.toml"
    path.write_text(f"""
[datasets.ring]
source = "csv"
options = {{ interactions = "{folder / 'inter.csv'}", items = "{folder / 'items.csv'}", k_core = 2, max_len = 6 }}

[models.tiny]
alias = "{model}"

[prompts.short]
template = "{folder / 'rerank.jinja'}"

[experiments.ring-data]
stage = "prepare"
dataset = "ring"

[experiments.ring-embed]
stage = "embed"
after = ["ring-data"]
dataset = "ring"
model = "tiny"

[experiments.ring-csft]
stage = "llm2rec"
after = ["ring-embed"]
dataset = "ring"
model = "tiny"
params = {{ step = "csft", {LLM2REC} }}

[experiments.ring-mntp]
stage = "llm2rec"
after = ["ring-csft"]
dataset = "ring"
model = "llm2rec:ring-csft"
params = {{ step = "mntp", {LLM2REC} }}

[experiments.ring-ic]
stage = "llm2rec"
after = ["ring-mntp"]
dataset = "ring"
model = "llm2rec:ring-mntp"
params = {{ step = "ic", epochs = 1, batch_size = 6, lr = 0.003, valid_examples = 6 }}

[experiments.ring-distill]
stage = "distill"
after = ["ring-ic"]
dataset = "ring"
teacher = "llm2rec:ring-ic"
student = "tiny"
params = {{ epochs = 2, batch_size = 6, lr = 0.001 }}

[experiments.ring-train]
stage = "train"
after = ["ring-distill"]
dataset = "ring"
seeds = [0]
params = {{ model = "sasrec", hidden = 16, heads = 2, layers = 1, epochs = 6, patience = 6, batch_size = 16, item_emb = "distill:ring-distill" }}

[experiments.ring-noise]
stage = "evaluate"
after = ["ring-train"]
seeds = [0]
params = {{ of = "ring-train", noise = "deletion" }}

[experiments.ring-rerank]
stage = "rerank"
after = ["ring-noise"]
model = "tiny"
prompt = "short"
seeds = [0]
params = {{ of = "ring-train", item_emb = "distill:ring-distill", top_k = 5, labels = "{LABELS}", users = 30, noise = "deletion" }}

[experiments.ring-profiles]
stage = "profiles"
after = ["ring-rerank"]
dataset = "ring"
model = "tiny"
params = {{ max_tokens = 6, strategy = "agg_after" }}

[experiments.ring-profile-embed]
stage = "profile-embed"
after = ["ring-profiles"]
model = "tiny"
params = {{ profiles = "profiles:ring-profiles", reduce = "pca:4" }}

[experiments.ring-teacher]
stage = "train"
after = ["ring-profile-embed"]
dataset = "ring"
seeds = [0]
params = {{ model = "sasrec", hidden = 16, heads = 2, layers = 1, epochs = 6, patience = 6, batch_size = 16, eval = "sampled:4", profiles = "profile-embed:ring-profile-embed", distill_epochs = 3 }}

[experiments.ring-soft]
stage = "delrec-distill"
after = ["ring-teacher"]
dataset = "ring"
model = "tiny"
teacher = "train:ring-teacher"
seeds = [0]
params = {{ soft_tokens = 2, top_h = 3, icl_examples = 1, {DELREC} }}

[experiments.ring-tuned]
stage = "delrec-finetune"
after = ["ring-soft"]
dataset = "ring"
model = "tiny"
teacher = "train:ring-teacher"
seeds = [0]
params = {{ distilled = "delrec-distill:ring-soft", test_examples = 6, {DELREC} }}
""")
    return path


def seqrec_run(study: Path, home: Path, experiment: str) -> subprocess.Popen:
    env = {**os.environ, **ENV, "SEQREC_HOME": str(home)}
    env.pop("SEQREC_DB", None)
    return subprocess.Popen([sys.executable, "-m", "seqrec", "run", experiment, "--file", str(study)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def rows(home: Path, query: str) -> list:
    """The query's rows, or none while the database or its tables do not exist yet."""
    if not (home / "seqrec.db").exists():
        return []
    # Closed at once: this process copies the home between stages, and closing a file that an open SQLite
    # connection also has open would drop that connection's POSIX locks.
    with closing(sqlite3.connect(home / "seqrec.db", timeout=30)) as connection:
        try:
            return connection.execute(query).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the schema is being made
                return []
            raise


def outcome(home: Path) -> dict:
    """Every finished run's final metrics (the last value of each split/key) and artifacts' sha256, keyed by its kind
    and config hash: run ids may differ between a killed home and the reference, what they measured may not.
    Timings (``*seconds``, ``*_per_s``) and the LLM call cache's accounting (split ``llm``: a resumed run answers
    from the cache what the killed one asked) are left out."""
    finals: dict = {}
    for kind, config_hash, split, key, value in rows(home, (
            "SELECT run.kind, run.config_hash, metric.split, metric.key, metric.value FROM metric "
            "JOIN run ON run.id = metric.run_id WHERE run.status = 'finished' ORDER BY metric.id")):
        if split != "llm" and not key.endswith(("seconds", "_per_s")):  # not the clock, nor cache accounting
            finals.setdefault((kind, config_hash), {})[f"{split}/{key}"] = value
    artifacts = {(kind, config_hash, artifact): sha256 for kind, config_hash, artifact, sha256 in rows(home, (
        "SELECT run.kind, run.config_hash, artifact.kind, artifact.sha256 FROM artifact "
        "JOIN run ON run.id = artifact.run_id WHERE run.status = 'finished'"))}
    return {"metrics": finals, "artifacts": artifacts}


def running_run(home: Path) -> tuple[int, str] | None:
    found = rows(home, "SELECT id, kind FROM run WHERE status = 'running'")
    return found[0] if found else None


def problems(home: Path) -> list[str]:
    """Integrity failures: a corrupt database, a run left running, an artifact missing or changed."""
    from seqrec.store.hashing import file_digest

    found = []
    if rows(home, "PRAGMA integrity_check")[0][0] != "ok":
        found.append("integrity_check")
    if running_run(home):
        found.append("a run left running")
    for path, sha256 in rows(home, "SELECT path, sha256 FROM artifact"):
        if not Path(path).exists() or file_digest(Path(path))[0] != sha256:
            found.append(f"artifact {path}")
    return found


def restore(snapshot: Path | None, home: Path) -> None:
    """Put ``home`` back as the snapshot holds it (absent: a home that does not exist yet)."""
    shutil.rmtree(home, ignore_errors=True)
    if snapshot is not None:
        shutil.copytree(snapshot, home, symlinks=True)


def timed_stage(study: Path, home: Path, experiment: str) -> tuple[float | None, float]:
    """Run one experiment to the end: (seconds until its run appeared, seconds its run took); for a stage that
    makes no run row (prepare): (None, seconds the command took)."""
    start = time.perf_counter()
    process = seqrec_run(study, home, experiment)
    appeared = None
    while process.poll() is None:
        if appeared is None and running_run(home):
            appeared = time.perf_counter()
        time.sleep(0.05)
    end = time.perf_counter()
    _, error = process.communicate()
    assert process.returncode == 0, f"{experiment} failed: {error[-2000:]}"
    if appeared is None:
        return None, end - start
    return appeared - start, end - appeared


def killed_and_rerun(study: Path, home: Path, experiment: str, delay: float, has_run: bool) -> dict:
    """Start the stage, kill it ``delay`` seconds after its run appears (after the start, for a stage that makes no
    run row), and run it again to the end."""
    process = seqrec_run(study, home, experiment)
    started = time.perf_counter()
    while has_run and process.poll() is None and not running_run(home) and time.perf_counter() - started < 120:
        time.sleep(0.02)
    killed_run = running_run(home)
    clock = time.perf_counter() if killed_run else started  # prepare has no run row: timed from the start
    time.sleep(max(0.0, clock + delay - time.perf_counter()))
    landed = "after the end" if process.poll() is not None else "run" if killed_run else "before the run"
    process.send_signal(signal.SIGKILL)
    process.communicate()
    again = seqrec_run(study, home, experiment)
    _, error = again.communicate()
    finished = {row[0] for row in rows(home, "SELECT id FROM run WHERE status = 'finished'")}
    return {"landed": landed, "completed": again.returncode == 0, "error": error[-2000:],
            "resumed": bool(killed_run and killed_run[0] in finished)}


COLUMNS = ("kills", "in the run", "completed", "resumed", "identical metrics", "identical artifacts",
           "integrity failures")


def crash_table(root: Path, kills: int, seed: int, chosen: set[str]) -> dict[str, Counter]:
    """The uninterrupted study up to the last chosen stage, then ``kills`` kills of each chosen stage: the counts."""
    study = write_study(root / "data")
    home = root / "home"
    restore(None, home)
    last = max(index for index, (label, _) in enumerate(STAGES) if label in chosen)
    durations, has_run, references, before_stage = {}, {}, {}, {}
    snapshot = None  # the home before the first stage: none yet
    for label, experiment in STAGES[:last + 1]:
        before_stage[label] = snapshot
        to_start, durations[label] = timed_stage(study, home, experiment)
        has_run[label] = to_start is not None
        references[label] = outcome(home)
        snapshot = root / f"after-{experiment}"
        shutil.copytree(home, snapshot, symlinks=True)
        print(f"{label}: {durations[label]:.1f} s" + (f", after {to_start:.1f} s to start" if to_start else ""),
              flush=True)

    rng = random.Random(seed)
    table: dict[str, Counter] = {}
    for label, experiment in STAGES:
        if label not in chosen:
            continue
        counts = table.setdefault(label, Counter())
        for _ in range(kills):
            restore(before_stage[label], home)
            result = killed_and_rerun(study, home, experiment, rng.uniform(0, durations[label]), has_run[label])
            got, reference = outcome(home), references[label]
            counts["kills"] += 1
            counts["in the run"] += result["landed"] == "run"
            counts["completed"] += result["completed"]
            counts["resumed"] += result["resumed"]
            counts["identical metrics"] += result["completed"] and got["metrics"] == reference["metrics"]
            counts["identical artifacts"] += result["completed"] and got["artifacts"] == reference["artifacts"]
            found = problems(home)
            counts["integrity failures"] += len(found)
            if not result["completed"] or found or got != reference:
                differs = [key for part in ("metrics", "artifacts") for key in set(got[part]) | set(reference[part])
                           if got[part].get(key) != reference[part].get(key)]
                last_line = result["error"].strip().splitlines()[-1:]
                print(f"  {label}: {result['landed']}, completed {result['completed']}, problems {found}, "
                      f"differs {differs} {last_line}", flush=True)
        print(f"{label}: " + ", ".join(f"{column} {counts[column]}" for column in COLUMNS), flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="Kills per stage.")
    parser.add_argument("--seed", type=int, default=0, help="Seeds the moments of the kills.")
    parser.add_argument("--stages", help="Only these stages (labels, comma-separated; default: all).")
    parser.add_argument("--keep", type=Path, help="Keep the homes in this folder (default: a temporary one).")
    args = parser.parse_args()
    chosen = set(args.stages.split(",")) if args.stages else {label for label, _ in STAGES}
    unknown = chosen - {label for label, _ in STAGES}
    if unknown:
        parser.error(f"no stage {', '.join(sorted(unknown))}; choose from {', '.join(label for label, _ in STAGES)}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="seqrec-crash-"))
    table = crash_table(root, args.kills, args.seed, chosen)
    print("| stage killed in | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for label, counts in table.items():
        print(f"| {label} | " + " | ".join(str(counts[column]) for column in COLUMNS) + " |")
    print(f"homes in {root}")


if __name__ == "__main__":
    main()
