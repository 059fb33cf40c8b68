"""A declared study with LLM stages on tiny models: embed and distill experiments feed SASRec through
``item_emb = "embed:..."`` / ``"distill:..."``, finished work is skipped, and the distill report pairs the
distilled student with its base model."""

import os
import subprocess
import sys

import pandas as pd
from llm_fixtures import GENRES, TITLES, tiny_llama, tiny_qwen2  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.store import open_store

runner = CliRunner()


def study_file(tmp_path, teacher, student):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [(f"u{user}", f"m{(user + step) % len(TITLES)}", 5, 1_000 + step) for user in range(30) for step in range(8)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(raw / "inter.csv", index=False)
    pd.DataFrame({"item_id": [f"m{i}" for i in range(len(TITLES))], "title": TITLES,
                  "genre": GENRES}).to_csv(raw / "items.csv", index=False)
    path = tmp_path / "experiments.toml"
    path.write_text(f"""
[datasets.movies]
source = "csv"
options = {{ interactions = "{raw / 'inter.csv'}", items = "{raw / 'items.csv'}", k_core = 2, max_len = 5 }}

[models.teacher]
alias = "{teacher}"

[models.student]
alias = "{student}"

[experiments.movies-data]
stage = "prepare"
dataset = "movies"

[experiments.base]
stage = "embed"
after = ["movies-data"]
dataset = "movies"
model = "student"

[experiments.distilled]
stage = "distill"
after = ["movies-data"]
dataset = "movies"
teacher = "teacher"
student = "student"
params = {{ epochs = 2, batch_size = 6, lr = 0.001 }}

[experiments.study]
stage = "train"
after = ["base", "distilled"]
dataset = "movies"
seeds = [0, 1]
params = {{ model = "sasrec", epochs = 1, hidden = 16, heads = 2, layers = 1 }}
grid = {{ item_emb = ["embed:base", "distill:distilled"] }}
""")
    return path


def test_embed_and_distill_experiments_feed_sasrec_and_the_distill_report(tmp_path, tiny_llama, tiny_qwen2):
    path = study_file(tmp_path, tiny_qwen2, tiny_llama)
    dry = runner.invoke(app, ["run", "study", "--file", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "waiting" in dry.stdout
    result = runner.invoke(app, ["run", "study", "--file", str(path)])
    assert result.exit_code == 0, result.output
    store = open_store()
    (distilled,) = store.list_runs(kind="distill", experiment="distilled")
    trained = store.list_runs(kind="train", experiment="study")
    assert len(trained) == 4 and {run.status for run in trained} == {"finished"}
    assert sum(run.config["item_emb_source"] == f"run:{distilled.id}" for run in trained) == 2
    again = runner.invoke(app, ["run", "study", "--file", str(path)])
    assert again.exit_code == 0 and "to do" not in again.stdout
    assert len(store.list_runs(kind="distill")) == 1

    report = runner.invoke(app, ["report", "--table", "distill", "--experiment", "study"])
    assert report.exit_code == 0, report.output
    assert f"distilled from {tiny_qwen2}" in report.stdout
    assert "the base student's item embeddings" in report.stdout  # rows are paired with the base model's row
    assert "No significance test" not in report.stdout


def test_a_distill_experiment_needs_a_teacher_and_a_student(tmp_path, tiny_llama, tiny_qwen2):
    path = study_file(tmp_path, tiny_qwen2, tiny_llama)
    path.write_text(path.read_text().replace('teacher = "teacher"\n', ""))
    result = runner.invoke(app, ["run", "distilled", "--file", str(path)])
    assert result.exit_code == 2 and "experiments.distilled.teacher: the distill stage needs a teacher" in result.stderr


def test_the_study_runs_under_torchrun_with_two_processes(tmp_path, tiny_llama, tiny_qwen2):
    """prepare and embed run on the main process, distill and train in both (gloo); every process plans from the
    same database, and the fresh database is migrated once."""
    path = study_file(tmp_path, tiny_qwen2, tiny_llama)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "seqrec", "run", "study", "--file", str(path)]
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    store = open_store()
    (distilled,) = store.list_runs(kind="distill")
    trained = store.list_runs(kind="train", experiment="study")
    assert distilled.config["processes"] == 2 and len(trained) == 4
    assert {(run.status, run.config["processes"]) for run in trained} == {("finished", 2)}
    assert "processes" not in store.list_runs(kind="embed")[0].config


PAPER_STUDY = """
[experiments.teacher-csft]
stage = "llm2rec"
after = ["movies-data"]
dataset = "movies"
model = "teacher"
params = { step = "csft", epochs = 1, batch_size = 6, lr = 0.003, max_examples = 24, valid_examples = 6 }

[experiments.teacher-ic]
stage = "llm2rec"
after = ["teacher-csft"]
dataset = "movies"
model = "llm2rec:teacher-csft"
params = { step = "ic", epochs = 1, batch_size = 6, lr = 0.003, valid_examples = 6 }

[experiments.student-distilled]
stage = "distill"
after = ["teacher-ic"]
dataset = "movies"
teacher = "llm2rec:teacher-ic"
student = "student"
params = { epochs = 1, batch_size = 6, lr = 0.001 }

[experiments.paper]
stage = "train"
after = ["teacher-ic", "student-distilled"]
dataset = "movies"
params = { model = "sasrec", epochs = 1, hidden = 16, heads = 2, layers = 1 }
grid = { item_emb = ["llm2rec:teacher-ic", "distill:student-distilled"] }
"""


def test_an_llm2rec_teacher_distilled_into_a_student_feeds_sasrec_in_one_study(tmp_path, tiny_llama, tiny_qwen2):
    """The first paper's pipeline as one study: csft, then ic on its model, the result as a distill teacher, and
    SASRec on the ic embeddings and on the student's."""
    path = study_file(tmp_path, tiny_qwen2, tiny_llama)
    path.write_text(path.read_text() + PAPER_STUDY)
    dry = runner.invoke(app, ["run", "paper", "--file", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "waiting" in dry.stdout, dry.output
    result = runner.invoke(app, ["run", "paper", "--file", str(path)])
    assert result.exit_code == 0, result.output
    store = open_store()
    (csft,) = store.list_runs(kind="llm2rec", experiment="teacher-csft")
    (ic,) = store.list_runs(kind="llm2rec", experiment="teacher-ic")
    (distilled,) = store.list_runs(kind="distill", experiment="student-distilled")
    assert (csft.config["stage"], ic.config["stage"], ic.config["model"]) == ("csft", "ic", f"run:{csft.id}")
    assert distilled.config["teacher"] == f"run:{ic.id}"
    trained = store.list_runs(kind="train", experiment="paper")
    assert {run.status for run in trained} == {"finished"}
    assert {run.config["item_emb_source"] for run in trained} == {f"run:{ic.id}", f"run:{distilled.id}"}
    again = runner.invoke(app, ["run", "paper", "--file", str(path)])
    assert again.exit_code == 0 and "to do" not in again.stdout
    assert len(store.list_runs(kind="llm2rec")) == 2 and len(store.list_runs(kind="train")) == 2
