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
from seqrec.report.tables import ndcg_bounds
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


def add_delrec_run(store, *, teacher="sasrec", variant="none", dataset="ml-100k", seed=0, metrics=None,
                   llm="smollm2-135m-instruct", experiment="study") -> Run:
    """A DELRec stage-2 run as `seqrec delrec finetune` records it (model: the LLM; teacher_model: the conventional
    model; variant: the ablation)."""
    return add_run(store, kind="delrec-finetune", model=llm, teacher_model=teacher, variant=variant, dataset=dataset,
                   seed=seed, metrics=metrics, eval="sampled:14", stage="finetune", experiment=experiment)


def test_paper_numbers_where_dataset_and_protocol_match(store):
    add_run(store, dataset="ml-100k", eval="sampled:14", metrics={"hr@1": 0.3, "hr@10": 0.8})
    add_run(store, dataset="amazon-video_games", metrics={"recall@10": 0.07})
    table = build_table("main", paper=True)
    assert "000-T1 SASRec + Ours(w/ Smollm2-135M) | - | - | 0.0860 |" in table
    assert "002-T2" not in table  # DELRec's Table II belongs to the delrec table
    delrec = build_table("delrec", paper=True)
    assert "002-T2 DELRec (SASRec) | 0.3701 | 0.8386 |" in delrec
    assert "paper 002\\_4599abe5b77946c7.txt, Table II (MovieLens-100K, Steam)" in delrec
    assert "002-T2" not in build_table("delrec")


def test_paper_numbers_of_each_table_kind(store):
    add_delrec_run(store, variant="wo_ta", metrics={"hr@1": 0.3})
    add_run(store, dataset="goodreads", item_emb="distilled", metrics={"ndcg@10": 0.1})
    add_run(store, dataset="goodreads", item_emb="distilled", noise="deletion", metrics={"ndcg@10": 0.1})
    assert "002-T4 w/o TA | 0.3425 |" in build_table("delrec-ablation", paper=True)
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
    (profiles,) = published_tables("profiles")
    assert profiles.relative["SASRec + LLM Distillation", "kion", "ndcg@10"] == pytest.approx(0.0202)
    assert ("SASRec", "kion", "ndcg@10") not in profiles.relative
    assert values["002-T2"]["KDALRD", "home-kitchen", "ndcg@10"] == (0.1945, None)
    assert values["002-T3"]["w USP", "steam", "ndcg@5"] == (0.4316, None)
    assert values["002-T4"]["w/o PRS", "beauty", "hr@10"] == (0.5431, None)
    assert len(published_tables("delrec-ablation")) == 4 and len(published_tables("delrec")) == 2
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
    assert "001 SASRec | 0.0217 ± 0.0013 | 0.0106 ± 0.0004 |" in build_table("profiles", paper=True)
    assert "002-T2" not in build_table("main", paper=True)  # Beauty is in 002's Table II, with sampled candidates


def add_rerank(store, *, seed=0, noise=None, reranked=0.2, base=0.1, p=None, users=100):
    run = add_run(store, kind="rerank", seed=seed, item_emb="distilled", noise=noise, rerank="smollm2/logprobs",
                  users=users, metrics={"ndcg@10": reranked})
    store.add_metrics(run.id, {"ndcg@10": base}, step=None, split="base")
    if p is not None:
        store.add_metrics(run.id, {"p_ndcg@10": p}, step=None, split="paired")
    return run


def test_a_reranking_makes_its_row_and_its_base_models_row_on_the_same_users(store):
    add_run(store, item_emb="distilled", metrics={"ndcg@10": 0.11})
    add_rerank(store, reranked=0.2, base=0.1, p=0.01)
    add_rerank(store, noise="deletion", reranked=0.15, base=0.08, p=0.3)
    table = report_table("noise")
    cells = {row.label: row.cells[0] for row in table.rows}
    assert list(cells) == ["sasrec + distilled", "sasrec + distilled, users=100",
                           "sasrec + distilled, rerank=smollm2/logprobs, users=100",
                           "sasrec + distilled, noise=deletion, users=100",
                           "sasrec + distilled, noise=deletion, rerank=smollm2/logprobs, users=100"]
    assert cells["sasrec + distilled, users=100"].mean == 0.1 and cells["sasrec + distilled"].mean == 0.11
    # one seed: the re-ranked rows carry the run's paired test over users against the base model's row
    assert cells["sasrec + distilled, rerank=smollm2/logprobs, users=100"].significant
    assert cells["sasrec + distilled, noise=deletion, rerank=smollm2/logprobs, users=100"].p_value == 0.3
    assert cells["sasrec + distilled, noise=deletion, users=100"].p_value is None
    assert any("tested over users" in note for note in table.footnotes)


def test_reranked_rows_over_seeds_are_tested_over_seeds(store):
    for seed, (reranked, base) in enumerate([(0.20, 0.10), (0.22, 0.11), (0.25, 0.12)]):
        add_rerank(store, seed=seed, reranked=reranked, base=base, p=0.9)
    row = next(row for row in report_table("noise").rows if "rerank=" in row.label)
    assert row.cells[0].p_value == pytest.approx(stats.ttest_rel([0.20, 0.22, 0.25], [0.10, 0.11, 0.12]).pvalue)


# DELRec's tables ------------------------------------------------------------------------------------------------------
def sampled(hr1, hr5, ndcg5, hr10, ndcg10):
    return {"hr@1": hr1, "hr@5": hr5, "ndcg@5": ndcg5, "hr@10": hr10, "ndcg@10": ndcg10}


@pytest.fixture
def delrec_study(store):
    """SASRec and GRU4Rec on the stored candidate sets, DELRec with each, and two ablations, over 3 seeds; a SASRec
    trained for the first paper's full ranking, which no DELRec table shows."""
    for seed in (0, 1, 2):
        add_run(store, seed=seed, eval="sampled:14", metrics=sampled(0.30, 0.60, 0.45, 0.75, 0.50 + seed / 1000))
        add_run(store, model="gru4rec", seed=seed, eval="sampled:14", metrics=sampled(0.28, 0.58, 0.43, 0.74, 0.48))
        add_run(store, seed=seed, metrics={"recall@10": 0.1})
        add_delrec_run(store, seed=seed, metrics=sampled(0.34, 0.66, 0.50, 0.80, [0.541, 0.543, 0.548][seed]))
        add_delrec_run(store, teacher="gru4rec", seed=seed, metrics=sampled(0.31, 0.61, 0.46, 0.76, 0.51))
        add_delrec_run(store, variant="wo_sp", seed=seed,
                       metrics=sampled(0.29, 0.59, 0.44, 0.74, [0.490, 0.487, 0.485][seed]))
        add_delrec_run(store, variant="w_ulsr", seed=seed, metrics=sampled(0.33, 0.65, 0.49, 0.79, 0.535))
    return store


def test_the_delrec_table_sets_each_delrec_row_under_its_conventional_model(delrec_study):
    table = report_table("delrec")
    assert [row.label for row in table.rows] == ["SASRec", "DELRec (SASRec), smollm2-135m-instruct", "GRU4Rec",
                                                 "DELRec (GRU4Rec), smollm2-135m-instruct"]
    assert [column.metric_label for column in table.columns] == ["HR@1", "HR@5", "N@5", "HR@10", "N@10"]
    assert {column.group for column in table.columns} == {"ml-100k (sampled:14)"}
    delrec = table.rows[1].cells[4]
    expected = stats.ttest_rel([0.541, 0.543, 0.548], [0.500, 0.501, 0.502]).pvalue
    assert delrec.p_value == pytest.approx(expected) and delrec.significant
    assert "its conventional model alone (DELRec (SASRec) against SASRec)" in " ".join(table.footnotes)


def test_the_delrec_ablation_table_tests_each_variant_against_the_default(delrec_study):
    table = report_table("delrec-ablation")
    labels = [row.label for row in table.rows]
    assert labels[0] == "Default (SASRec, smollm2-135m-instruct)"
    assert set(labels) == {"Default (SASRec, smollm2-135m-instruct)", "w/o SP (SASRec, smollm2-135m-instruct)",
                           "w ULSR (SASRec, smollm2-135m-instruct)", "Default (GRU4Rec, smollm2-135m-instruct)"}
    without = next(row for row in table.rows if row.label.startswith("w/o SP"))
    expected = stats.ttest_rel([0.490, 0.487, 0.485], [0.541, 0.543, 0.548]).pvalue
    assert without.cells[4].p_value == pytest.approx(expected)
    assert "002-T3 w/o SP | 0.3020 |" in build_table("delrec-ablation", paper=True)


def test_the_papers_ndcg_beyond_its_hr_bounds_is_noted_and_ours_stays_within(delrec_study):
    table = report_table("delrec", paper=True)
    notes = " ".join(table.footnotes)
    assert ("002-T2 DELRec (SASRec), ml-100k (sampled:14): N@10 0.5950 exceeds 0.5760, the most that its HR@1/5/10 "
            "and N@5 allow") in notes
    ours = [row for row in table.rows if not row.published]
    assert ours and not any(note.startswith(f"{row.label}, ") for row in ours for note in table.footnotes)
    for row in ours:  # the bounds hold for every one of our rows, mean over seeds included
        means = {column.metric: cell.mean for column, cell in zip(table.columns, row.cells)}
        for metric, (low, high) in ndcg_bounds(means).items():
            assert low - 1e-9 <= means[metric] <= high + 1e-9
    assert "exceeds" not in " ".join(report_table("delrec").footnotes)


def test_patterns_select_a_study_spread_over_experiments(store):
    add_run(store, eval="sampled:14", experiment="delrec-base-sasrec", metrics=sampled(0.3, 0.6, 0.45, 0.75, 0.5))
    add_delrec_run(store, experiment="delrec-cpu-finetune", metrics=sampled(0.3, 0.6, 0.45, 0.75, 0.5))
    add_delrec_run(store, experiment="delrec-gpu-finetune", llm="flan-t5-xl", metrics=sampled(0.4, 0.7, 0.5, 0.8, 0.6))
    labels = [row.label for row in report_table("delrec", experiment="delrec-base-*, delrec-cpu-*").rows]
    assert labels == ["SASRec", "DELRec (SASRec), smollm2-135m-instruct"]
    assert [row.label for row in report_table("delrec", experiment="delrec-cpu-*").rows] == [
        "DELRec (SASRec), smollm2-135m-instruct"]


@pytest.fixture
def profile_study(store):
    """SASRec and BERT4Rec on ML-1M over three seeds, each without and with profiles, in two experiments; plus runs
    the profiles table leaves out (frozen item embeddings, GRU4Rec)."""
    base = {"sasrec": [0.080, 0.084, 0.079], "bert4rec": [0.100, 0.104, 0.101]}
    gain = {"sasrec": [0.004, 0.005, 0.003], "bert4rec": [0.001, -0.001, 0.003]}
    for model in base:
        for seed in range(3):
            for profiles, shift in ((None, 0.0), ("run:9", gain[model][seed])):
                value = base[model][seed] + shift
                add_run(store, model=model, dataset="ml-1m-temporal", seed=seed, experiment=f"profiles-{model}",
                        profiles=profiles, metrics={"recall@10": value, "ndcg@10": value / 2, "recall@20": 1.0})
    add_run(store, dataset="ml-1m-temporal", item_emb="minilm", experiment="profiles-sasrec",
            metrics={"recall@10": 0.5})
    add_run(store, model="gru4rec", dataset="ml-1m-temporal", experiment="profiles-sasrec", metrics={"recall@10": 0.5})
    return base, gain


def test_the_profiles_table_sets_each_model_with_profiles_under_its_model_without(profile_study):
    base, gain = profile_study
    table = report_table("profiles", experiment=["profiles-sasrec", "profiles-bert4rec"])
    assert [row.label for row in table.rows] == ["sasrec", "sasrec, distilled", "bert4rec", "bert4rec, distilled"]
    assert [column.metric_label for column in table.columns] == ["R@10", "N@10"]  # the paper's columns only
    distilled = table.rows[1].cells[0]
    with_profiles = [b + g for b, g in zip(base["sasrec"], gain["sasrec"])]
    assert distilled.relative == pytest.approx(sum(with_profiles) / sum(base["sasrec"]) - 1)
    assert distilled.p_value == pytest.approx(stats.ttest_rel(with_profiles, base["sasrec"]).pvalue)
    assert table.rows[0].cells[0].relative is None and table.rows[0].cells[0].p_value is None
    text = build_table("profiles", experiment=["profiles-sasrec", "profiles-bert4rec"])
    assert f"| sasrec, distilled | 0.0850 ± 0.0036 (+{distilled.relative:.1%})† |" in text
    assert "| **0.1027 ± 0.0015 (+1.0%)** |" in text  # bert4rec's gain: the best mean, but not a significant one
    assert "relative change of the mean" in text
    assert "0.0850 $\\pm$ 0.0036 (+4.9\\%)$^\\dagger$" in build_table("profiles", fmt="latex")


def test_the_profiles_table_puts_the_papers_datasets_beside_ours(profile_study):
    table = report_table("profiles", paper=True)
    groups = list(dict.fromkeys(column.group for column in table.columns))
    assert groups == ["ml-1m-temporal (full)", "beauty (paper)", "ml-20m (paper)", "kion (paper)",
                      "amazon-m2 (paper)"]
    text = build_table("profiles", paper=True)
    assert "| sasrec, distilled | 0.0850 ± 0.0036 (+4.9%)† | 0.0425 ± 0.0018 (+4.9%)† | - | - |" in text
    assert "| 001 SASRec + LLM Distillation | - | - | 0.0228 ± 0.0004 (+5.2%) | 0.0111 ± 0.0002 (+4.9%) |" in text
    assert "| 001 BERT4Rec | - | - | 0.0102 ± 0.0004 | 0.0051 ± 0.0004 | 0.1088" in text
    assert "Columns marked (paper)" in text
    cells = pd.read_csv(io.StringIO(build_table("profiles", paper=True, fmt="csv")))
    printed = cells[(cells["row"] == "001 BERT4Rec + LLM Distillation") & (cells["dataset"] == "beauty")]
    assert printed["relative"].tolist() == pytest.approx([0.2353, 0.1961])


def test_the_cli_reads_several_experiments(profile_study):
    result = CliRunner().invoke(cli_app(), ["report", "--table", "profiles", "-e", "profiles-sasrec",
                                            "-e", "profiles-bert4rec"])
    assert result.exit_code == 0 and "bert4rec, distilled" in result.output and "sasrec, distilled" in result.output
    only = CliRunner().invoke(cli_app(), ["report", "--table", "profiles", "-e", "profiles-bert4rec"])
    assert only.exit_code == 0 and "sasrec" not in only.output.replace("bert4rec", "")
    missing = CliRunner().invoke(cli_app(), ["report", "--table", "profiles", "-e", "x", "-e", "y"])
    assert missing.exit_code == 2 and "no finished runs for the profiles table in experiments 'x', 'y'" in missing.output


def test_the_noise_table_holds_test_numbers_only():
    from seqrec.report.specs import TABLES

    include = TABLES["noise"].include
    assert include({"model": "sasrec"}) and include({"split": "test", "rerank": "m/logprobs"})
    assert not include({"split": "valid", "rerank": "m/logprobs"})
