"""`seqrec report`: numbers from hand-made runs in a temporary store, formats, published numbers, bad input."""

import io

import pandas as pd
import pytest
import typer
from scipy import stats
from typer.testing import CliRunner

from seqrec.cli._app import command_group
from seqrec.cli.report import report
from seqrec.errors import SeqrecError
from seqrec.report import build_table, report_table
from seqrec.report.published import published_dataset, published_tables
from seqrec.store import Run, open_store

pytestmark = pytest.mark.backend  # the reports and the dashboard read PostgreSQL as they read SQLite


def add_run(store, *, model="sasrec", dataset="ml-100k", seed=0, metrics=None, status="finished",
            experiment="study", item_emb=None, eval="full", kind="train", **config) -> Run:
    """A tracked training run written straight into the store (no training, no torch)."""
    run = store.create_run(Run(kind=kind, experiment=experiment, status=status, seed=seed, dataset=dataset,
                               config={"model": model, "item_emb": item_emb, "eval": eval, **config},
                               config_hash=f"{model}-{item_emb}-{dataset}-{seed}-{config}-{len(store.list_runs())}"))
    if metrics:
        store.add_metrics(run.id, metrics, step=None, split="test")
    return run


@pytest.fixture
def store():
    return open_store()


@pytest.fixture
def study(store):
    """SASRec (baseline), SASRec + SmolLM2 (clearly better), GRU4Rec (seed 2 failed) on ML-100K."""
    for seed, (base, llm, gru) in enumerate([(0.10, 0.20, 0.09), (0.12, 0.23, 0.08), (0.14, 0.24, None)]):
        add_run(store, seed=seed, metrics={"recall@10": base, "ndcg@10": base / 2})
        add_run(store, seed=seed, item_emb="smollm2-135m", metrics={"recall@10": llm, "ndcg@10": llm / 2})
        add_run(store, model="gru4rec", seed=seed, status="finished" if gru else "failed",
                metrics={"recall@10": gru, "ndcg@10": gru / 2} if gru else None)
    return store


def test_mean_and_sample_std_over_seeds(study):
    table = build_table("main", experiment="study")
    assert "| sasrec | 0.1200 ± 0.0200 | 0.0600 ± 0.0100 |" in table
    assert "0.2233 ± 0.0208" in table  # mean of .20 .23 .24; std with ddof=1 is 0.02082


def test_best_is_bold_and_paired_t_test_marks_significant_rows(study):
    table = report_table("main", experiment="study")
    llm = next(row for row in table.rows if row.label == "sasrec + smollm2-135m")
    expected = stats.ttest_rel([0.20, 0.23, 0.24], [0.10, 0.12, 0.14]).pvalue
    assert llm.cells[0].p_value == pytest.approx(expected) and expected < 0.05
    assert "**0.2233 ± 0.0208†**" in build_table("main", experiment="study")
    baseline = next(row for row in table.rows if row.label == "sasrec")
    assert baseline.cells[0].p_value is None and not baseline.cells[0].best
    assert "paired t-test" in table.footnotes[2] and "model=sasrec, item_emb=none" in table.footnotes[2]


def test_missing_runs_are_named(study):
    add_run(study, dataset="Video_Games", seed=0, metrics={"recall@10": 0.05, "ndcg@10": 0.02})
    table = build_table("main", experiment="study")
    failed = next(run for run in study.list_runs(status="failed"))
    assert f"missing: gru4rec/ml-100k (full) seed 2 (failed, run {failed.id})" in table
    assert "missing: gru4rec/Video\\_Games (full) seeds 0, 1, 2" in table
    assert "0.0850 ± 0.0071" in table  # gru4rec's two seeds still make a cell


def test_single_seed_shows_n_1(store):
    add_run(store, seed=7, metrics={"hr@1": 0.3, "ndcg@5": 0.4}, eval="sampled:14")
    table = build_table("main")
    assert "0.3000 (n=1)" in table and "HR@1" in table and "N@5" in table


def test_formats(study):
    latex = build_table("main", experiment="study", fmt="latex")
    assert "\\textbf{0.2233 $\\pm$ 0.0208$^\\dagger$}" in latex and "\\begin{tabular}" in latex
    assert "<b>0.2233 ± 0.0208†</b>" in build_table("main", experiment="study", fmt="html")
    cells = pd.read_csv(io.StringIO(build_table("main", experiment="study", fmt="csv")))
    row = cells[(cells["row"] == "sasrec") & (cells["metric"] == "recall@10")].iloc[0]
    assert row["mean"] == pytest.approx(0.12) and row["std"] == pytest.approx(0.02) and row["n"] == 3


def test_tables_pick_their_runs(store):
    for seed in (0, 1):
        add_run(store, seed=seed, item_emb="smollm2-135m", metrics={"recall@10": 0.1 + seed / 100})
        add_run(store, seed=seed, item_emb="distilled", metrics={"recall@10": 0.2 + seed / 100})
        add_run(store, seed=seed, item_emb="distilled", noise="deletion", metrics={"recall@10": 0.15})
        add_run(store, seed=seed, variant="w/o TA", metrics={"recall@10": 0.3})
    labels = {kind: [row.label for row in report_table(kind).rows] for kind in ("main", "distill", "noise", "ablation")}
    assert labels["main"] == ["sasrec + smollm2-135m", "sasrec + distilled"]
    assert labels["distill"] == ["sasrec + smollm2-135m", "sasrec + distilled"]
    assert labels["noise"] == ["sasrec + smollm2-135m", "sasrec + distilled", "sasrec + distilled, noise=deletion"]
    assert labels["ablation"] == ["sasrec + smollm2-135m", "sasrec + distilled", "w/o TA"]


def test_paper_numbers_where_dataset_and_protocol_match(store):
    add_run(store, dataset="ml-100k", eval="sampled:14", metrics={"hr@1": 0.3, "hr@10": 0.8})
    add_run(store, dataset="amazon-video_games", metrics={"recall@10": 0.07})
    table = build_table("main", paper=True)
    assert "002-T2 DELRec (SASRec) | 0.3701 | 0.8386 |" in table
    assert "000-T1 SASRec + Ours(w/ Smollm2-135M) | - | - | 0.0860 |" in table
    assert "paper 002\\_4599abe5b77946c7.txt, Table II (MovieLens-100K, Steam)" in table
    assert "002-T2" not in build_table("main")


def test_paper_numbers_of_each_table_kind(store):
    add_run(store, dataset="ml-100k", eval="sampled:14", variant="w/o TA", metrics={"hr@1": 0.3})
    add_run(store, dataset="goodreads", item_emb="distilled", metrics={"ndcg@10": 0.1})
    add_run(store, dataset="goodreads", item_emb="distilled", noise="deletion", metrics={"ndcg@10": 0.1})
    assert "002-T4 w/o TA | 0.3425 |" in build_table("ablation", paper=True)
    noise = build_table("noise", paper=True)
    assert "000-NS Smollm2-135M (noise, re-rank) | 0.0756 |" in noise and "000-T1" not in noise
    assert "000-T2 Distillated model | 0.8900 |" in build_table("distill", paper=True)


def test_published_data_as_printed():
    values = {}
    for table in published_tables():
        values.setdefault(table.tag, {}).update(table.values)
    assert values["000-T1"]["SASRec + LLM2Rec*", "goodreads", "ndcg@10"] == (0.0859, None)
    assert values["000-NQ"]["Qwen2-0.5B (noise)", "baby", "recall@20"] == (0.0759, None)
    assert values["001"]["SASRec", "ml-20m", "recall@10"] == (0.0781, 0.0093)
    assert values["002-T2"]["KDALRD", "home-kitchen", "ndcg@10"] == (0.1945, None)
    assert values["002-T3"]["w USP", "steam", "ndcg@5"] == (0.4316, None)
    assert values["002-T4"]["w/o PRS", "beauty", "hr@10"] == (0.5431, None)
    assert len(published_tables("ablation")) == 4
    assert published_dataset("MovieLens-100K") == "ml-100k" and published_dataset("Home_and_Kitchen") == "home-kitchen"
    assert published_dataset("ml-1m") is None


def cli_app() -> typer.Typer:
    app = command_group("test")
    app.command("report")(report)
    app.callback()(lambda: None)
    return app


def test_cli_writes_output_file(study, tmp_path):
    target = tmp_path / "tables" / "main.tex"
    result = CliRunner().invoke(cli_app(), ["report", "--table", "main", "--experiment", "study", "--format", "latex",
                                            "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("\\begin{table}") and not list(target.parent.glob(".main.tex.*"))


@pytest.mark.parametrize("args, message", [
    (["--experiment", "nothing-here"], "no finished runs for the main table in experiment 'nothing-here'"),
    (["--table", "best"], "unknown table 'best'"),
    (["--format", "docx"], "unknown format 'docx'"),
])
def test_cli_bad_input_exits_2(study, args, message):
    result = CliRunner().invoke(cli_app(), ["report", *args])
    assert result.exit_code == 2 and message in result.output


def test_no_finished_runs_is_an_error(store):
    add_run(store, status="running")
    with pytest.raises(SeqrecError, match="no finished runs"):
        build_table("main")


def test_a_rerun_seed_counts_once_with_its_newest_run(store):
    add_run(store, seed=0, metrics={"recall@10": 0.50})
    add_run(store, seed=1, metrics={"recall@10": 0.20})
    add_run(store, seed=0, metrics={"recall@10": 0.10})  # seed 0 rerun: this one counts
    assert "| sasrec | 0.1500 ± 0.0707 |" in build_table("main")


def test_the_paired_t_test_pairs_runs_by_seed(store):
    base = {0: 0.10, 1: 0.20, 2: 0.13, 3: 0.30}
    llm = {0: 0.12, 1: 0.21, 2: 0.16, 3: 0.36}
    for seed in (0, 1, 2, 3):
        add_run(store, seed=seed, metrics={"recall@10": base[seed]})
    for seed in (3, 1, 0, 2):  # another order of runs
        add_run(store, seed=seed, item_emb="e", metrics={"recall@10": llm[seed]})
    row = next(row for row in report_table("main").rows if row.label == "sasrec + e")
    expected = stats.ttest_rel([llm[s] for s in range(4)], [base[s] for s in range(4)]).pvalue
    assert row.cells[0].p_value == pytest.approx(expected)


def test_published_rows_need_the_same_protocol_and_keep_their_std(store):
    add_run(store, dataset="beauty", metrics={"recall@10": 0.02, "ndcg@10": 0.01})  # full ranking
    table = build_table("main", paper=True)
    assert "001 SASRec | 0.0217 ± 0.0013 | 0.0106 ± 0.0004 |" in table
    assert "002-T2" not in table  # Beauty is in 002's Table II, but with sampled candidates
