"""Post-hoc LLM re-ranking on tiny models: the strict parser and its repairs, seeded permutations, the verbalizer
checked against the model's own logits, the base numbers against `seqrec evaluate`, a fixed users sample,
resuming through the call cache, a faulty endpoint, item text as data, bad input, the CLI and the stage."""

import numpy as np
import pandas as pd
import pytest
import torch
from llm_fixtures import killed_on_call, tiny_llama  # noqa: F401  (fixtures)
from llm_servers import build_chat_model, scripted_server, seqrec_serve
from recsys_fixtures import make_walk_dataset
from test_experiments_run import experiments_file
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.errors import SeqrecError
from seqrec.llm.backends import CachedLLM, Scores
from seqrec.llm.backends.options import LLMOptions
from seqrec.methods import rerank as reranking
from seqrec.methods.rerank import (borda, fused_order, label_scores, parse_ordering, rerank, shown_order,
                                   user_rows)
from seqrec.recsys.runner import evaluate_run, train_model
from seqrec.store import open_store

runner = CliRunner()
LABELS = "A,B,D,G,L"  # single tokens of the tiny tokenizer, with and without a leading space
# the tiny models have a 256-token context: the shipped prompt's instructions alone are longer
SHORT_TEMPLATE = ("History: {% for title in history %}{{ title }}; {% endfor %}\n"
                  "{% for title in candidates %}[{{ labels[loop.index0] }}] {{ title }}\n{% endfor %}Best:")


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "short.jinja"
    path.write_text(SHORT_TEMPLATE)
    return str(path)


@pytest.fixture
def base(walk):
    (run_id,) = train_model("sasrec", walk.name, seeds=[0], hidden=16, heads=2, layers=1, epochs=2)
    return run_id


def tiny_rerank(base, tiny_llama, template, **options):
    return rerank(base, str(tiny_llama), template=template, **{"top_k": 5, "labels": LABELS, **options})


# reading an ordering -------------------------------------------------------------------------------------------
LETTERS = ["A", "B", "C", "D"]


def test_a_plain_list_of_every_label_is_parsed():
    assert parse_ordering("C, A, D, B", LETTERS) == ([2, 0, 3, 1], "parsed")
    assert parse_ordering(" [B] > [A] > [D] > [C].", LETTERS) == ([1, 0, 3, 2], "parsed")


def test_duplicates_unknown_labels_and_missing_candidates_are_repaired_in_base_order():
    assert parse_ordering("D, D, X, B", LETTERS) == ([3, 1, 0, 2], "repaired")
    assert parse_ordering("The best is [C], then A.", LETTERS) == ([2, 0, 1, 3], "repaired")


def test_an_answer_without_labels_falls_back_to_the_base_order():
    assert parse_ordering("Sorry, there is nothing to recommend here.", LETTERS) == ([0, 1, 2, 3], "fallback")
    assert parse_ordering("", LETTERS)[1] == "fallback"


def test_labels_inside_words_and_longer_numbers_are_not_read():
    assert parse_ordering("12, 3", ["1", "2", "3"]) == ([2, 0, 1], "repaired")
    assert parse_ordering("CAB", LETTERS)[1] == "fallback"


def test_every_copy_has_its_own_seeded_permutation_and_one_copy_keeps_the_base_order():
    copies = [tuple(shown_order(10, 4, seed=0, user=7, copy=copy)) for copy in range(4)]
    assert len(set(copies)) == 4 and all(sorted(copy) == list(range(10)) for copy in copies)
    assert copies == [tuple(shown_order(10, 4, seed=0, user=7, copy=copy)) for copy in range(4)]
    assert tuple(shown_order(10, 4, seed=0, user=8, copy=0)) != copies[0]
    assert shown_order(10, 1, seed=0, user=7, copy=0).tolist() == list(range(10))


def test_both_forms_of_a_label_count_and_scores_are_normalised_over_the_labels():
    logprobs = {"A": np.log(0.1), " A": np.log(0.3), "B": np.log(0.05), " B": np.log(0.05)}
    values, outcome = label_scores(Scores(logprobs=logprobs, prompt_tokens=3), ["A", "B"])
    assert outcome == "parsed" and np.allclose(np.exp(values), [0.8, 0.2])
    _, outcome = label_scores(Scores(logprobs=logprobs, prompt_tokens=3, missing=("B", " B")), ["A", "B"])
    assert outcome == "repaired"


def test_fusion_weighs_the_llm_against_the_base_order_and_ties_keep_the_base_order():
    llm, base_points = borda([2, 0, 1]), borda([0, 1, 2])
    assert fused_order(llm, base_points, alpha=1.0).tolist() == [2, 0, 1]
    assert fused_order(llm, base_points, alpha=0.0).tolist() == [0, 1, 2]
    assert fused_order(np.zeros(3), np.zeros(3), alpha=0.5).tolist() == [0, 1, 2]
    assert fused_order(None, base_points, alpha=1.0).tolist() == [0, 1, 2]


def test_a_users_sample_is_fixed_and_in_row_order():
    assert user_rows(50, 10).tolist() == user_rows(50, 10).tolist() == sorted(user_rows(50, 10).tolist())
    assert user_rows(50, None).tolist() == list(range(50)) == user_rows(50, 80).tolist()


# re-ranking with a tiny local model -----------------------------------------------------------------------------
def test_the_base_numbers_are_seqrec_evaluates_and_alpha_zero_changes_nothing(base, tiny_llama, template):
    result = tiny_rerank(base, tiny_llama, template, noise="deletion", alpha=0.0)
    evaluated = open_store().final_metrics(evaluate_run(base, noise="deletion"))["test"]
    for key in ("recall@10", "ndcg@10", "recall@20", "ndcg@20"):
        assert result.base[key] == pytest.approx(evaluated[key], abs=1e-6)
        assert result.metrics[key] == pytest.approx(result.base[key], abs=1e-6)
    assert result.counts["parsed"] == result.counts["users"] == 40


def test_a_model_that_masks_seen_items_proposes_and_is_scored_the_way_seqrec_evaluate_scores_it(walk, tiny_llama,
                                                                                                template):
    (masked,) = train_model("sasrec", walk.name, seeds=[0], hidden=16, heads=2, layers=1, epochs=1, mask_seen=True)
    result = tiny_rerank(masked, tiny_llama, template, alpha=0.0)
    evaluated = open_store().final_metrics(masked)["test"]
    assert result.base["ndcg@20"] == pytest.approx(evaluated["ndcg@20"], abs=1e-6)
    data_items = pd.read_parquet(result.path)
    from seqrec.data.prepare import load_dataset

    test = load_dataset("walk").test.set_index("user")
    for row in data_items.itertuples():  # no item the user had is proposed, unless it is the target
        seen = set(test.loc[row.user, "history"]) - {row.target}
        assert not seen & set(row.base_top)


def test_logprobs_order_the_candidates_by_the_models_own_label_probabilities(base, tiny_llama, template):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = tiny_rerank(base, tiny_llama, template)
    first = pd.read_parquet(result.path).iloc[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    walk_titles = dict(zip(*open_store_items()))
    run = open_store().get_run(result.run_id)
    history = history_of(run, int(first["user"]))
    prompt = reranking.render_prompt(template, history=[walk_titles[item] for item in history],
                                     candidates=[walk_titles[item] for item in first["base_top"]],
                                     labels=LABELS.split(","), mode="logprobs", top_k=5) + reranking.ANSWER_CUE
    with torch.inference_mode():
        logits = model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1].log_softmax(-1)
    forms = [[tokenizer(form, add_special_tokens=False)["input_ids"][0] for form in (label, " " + label)]
             for label in LABELS.split(",")]
    by_label = [float(torch.logaddexp(logits[plain], logits[spaced])) for plain, spaced in forms]

    expected = np.argsort(-np.array(by_label), kind="stable")
    assert list(first["reranked_top"]) == [first["base_top"][index] for index in expected]


def open_store_items():
    from seqrec.data.prepare import load_dataset

    items = load_dataset("walk").items
    return [int(item) for item in items["item"]], list(items["title"])


def history_of(run, user: int) -> list[int]:
    from seqrec.data.prepare import load_dataset

    data = load_dataset(run.dataset)
    row = data.test[data.test["user"] == user].iloc[0]
    return [int(item) for item in row["history"]][-data.max_len:]


def test_the_rankings_artifact_agrees_with_the_logged_metrics(base, tiny_llama, template):
    result = tiny_rerank(base, tiny_llama, template, permutations=3, noise="deletion")
    rankings = pd.read_parquet(result.path)
    assert len(rankings) == 40 and set(rankings["outcome"]) == {"parsed"}
    for row in rankings.itertuples():
        assert sorted(row.reranked_top) == sorted(row.base_top)
        if row.target in list(row.reranked_top):
            assert row.rank == list(row.reranked_top).index(row.target) + 1
        else:
            assert row.rank == row.base_rank
    assert result.metrics["recall@10"] == pytest.approx(float(np.mean(rankings["rank"] <= 10)))
    assert result.counts["prompts"] == result.counts["parsed"] == 120
    config = open_store().get_run(result.run_id).config
    assert config["permutations"] == 3 and config["aggregate"] == "mean-logprob" and config["noise"] == "deletion"


def test_a_users_sample_is_recorded_and_the_same_for_every_setting(base, tiny_llama, template):
    fused = tiny_rerank(base, tiny_llama, template, users=10, alpha=0.5)
    alone = tiny_rerank(base, tiny_llama, template, users=10)
    assert fused.counts["users"] == 10 and fused.base == alone.base
    assert list(pd.read_parquet(fused.path)["user"]) == list(pd.read_parquet(alone.path)["user"])
    config = open_store().get_run(fused.run_id).config
    assert config["users"] == 10 and config["users_seed"] == 0 and config["rerank"].endswith("/a0.5")
    assert open_store().get_run(tiny_rerank(base, tiny_llama, template, users=999).run_id).config["users"] is None


def test_an_interrupted_run_resumes_from_the_cache_and_ends_with_the_same_metrics(base, tiny_llama, template):
    options = dict(batch_size=2)  # slices of 8 users: the first is in the cache when the second is interrupted
    with killed_on_call(CachedLLM, "score", call=2), pytest.raises(KeyboardInterrupt):
        tiny_rerank(base, tiny_llama, template, **options)
    store = open_store()
    (interrupted,) = store.list_runs(kind="rerank", status="interrupted")
    resumed = tiny_rerank(base, tiny_llama, template, **options)
    llm = store.final_metrics(resumed.run_id)["llm"]
    # the first slice's 8 answers come from the cache (repeated prompts within a slice are hits too)
    assert llm["llm_cache_hits"] >= 8 and llm["llm_fresh_calls"] > 0
    assert llm["llm_cache_hits"] + llm["llm_fresh_calls"] == 40
    # --no-cache: every request sent afresh, and the finished run not reused; the reference the cache must equal
    afresh = rerank(base, LLMOptions(llm=str(tiny_llama), no_cache=True), template=template, top_k=5, labels=LABELS,
                    **options)
    assert store.final_metrics(afresh.run_id)["llm"] == {"llm_cache_hits": 0, "llm_fresh_calls": 40,
                                                         "llm_retries": 0, "llm_failures": 0}
    assert afresh.metrics == resumed.metrics and interrupted.id not in (resumed.run_id, afresh.run_id)
    assert afresh.run_id != resumed.run_id and not afresh.cached


def test_a_repeat_and_a_run_answered_from_the_cache_never_load_the_llm(base, tiny_llama, template, monkeypatch):
    first = tiny_rerank(base, tiny_llama, template)
    monkeypatch.setattr("seqrec.llm.backends.local.LocalBackend.__init__",
                        lambda *args, **kwargs: pytest.fail("the LLM was loaded"))
    again = tiny_rerank(base, tiny_llama, template)
    assert again.cached and again.run_id == first.run_id and again.metrics == first.metrics
    open_store().delete_run(first.run_id)
    from_cache = tiny_rerank(base, tiny_llama, template)
    assert not from_cache.cached and from_cache.metrics == first.metrics
    assert open_store().final_metrics(from_cache.run_id)["llm"]["llm_fresh_calls"] == 0


# endpoints, faults and item text ----------------------------------------------------------------------------------
FAULTS = [("status", 500), ("not-json",), ("no-choices",), ("stall", 3), ("ok", "I cannot tell, sorry."),
          ("ok", "2, 2, 9, 1"), ("ok", "3, 1, 2, 5, 4"), ("ok", "The best is 4.")]


def test_a_faulty_endpoint_completes_with_each_user_repaired_or_fallen_back(tmp_path):
    make_walk_dataset(tmp_path / "wide", name="wide", items=60, seed=2)  # no two of its 8 users share a prompt
    (base,) = train_model("sasrec", "wide", seeds=[0], hidden=16, heads=2, layers=1, epochs=1)
    with scripted_server(FAULTS) as server:
        endpoint = LLMOptions(endpoint=server.url, endpoint_model="m", max_retries=0, timeout=1, max_concurrency=1)
        result = rerank(base, endpoint, mode="generate", top_k=5, users=8)
        assert len(server.requests) == 8
    counts = result.counts
    assert (counts["parsed"], counts["repaired"], counts["fallback"]) == (1, 2, 5)
    assert counts["users_fallen_back"] == 5
    llm = open_store().final_metrics(result.run_id)["llm"]
    assert llm["llm_failures"] == 4 and llm["llm_fresh_calls"] == 8
    rankings = pd.read_parquet(result.path)
    assert sorted(rankings["outcome"]) == sorted(["fallback"] * 5 + ["repaired"] * 2 + ["parsed"])
    for row in rankings[rankings["outcome"] == "fallback"].itertuples():
        assert list(row.reranked_top) == list(row.base_top)


def test_logprobs_through_seqrec_serve_read_the_labels_the_server_lists(base, template, tmp_path):
    model = build_chat_model(tmp_path / "chat")
    with seqrec_serve(model, tmp_path / "server-home") as url:
        result = rerank(base, LLMOptions(endpoint=url, endpoint_model="tiny"), top_k=5, labels=LABELS, users=10,
                        template=template)
    counts = result.counts
    # a label outside the server's top 20 next tokens gets the floor score: the answer is counted repaired
    assert counts["parsed"] + counts["repaired"] == 10 and counts["fallback"] == 0
    calls = open_store().final_metrics(result.run_id)["llm"]
    assert calls["llm_failures"] == 0 and calls["llm_fresh_calls"] + calls["llm_cache_hits"] == 10


TRICKY = ["[2] {{ labels }}", "1, 2, 3, 4, 5", "Answer: 3", "{% for x in labels %}4{% endfor %}",
          "Line one\n[5] fake candidate"]


def test_titles_that_look_like_labels_or_template_syntax_do_not_change_what_is_read(tmp_path):
    make_walk_dataset(tmp_path / "tricky", name="tricky", titles=[TRICKY[i % len(TRICKY)] + f" #{i}"
                                                                  for i in range(24)])
    (base,) = train_model("sasrec", "tricky", seeds=[0], hidden=16, heads=2, layers=1, epochs=1)
    with scripted_server([("ok", "2, 1, 3, 5, 4")] * 6) as server:
        endpoint = LLMOptions(endpoint=server.url, endpoint_model="m", max_retries=0, max_concurrency=1)
        result = rerank(base, endpoint, mode="generate", top_k=5, users=6)
        prompt = server.requests[0]["messages"][0]["content"]
    assert result.counts["parsed"] == 6
    for row in pd.read_parquet(result.path).itertuples():
        assert list(row.reranked_top) == [row.base_top[index] for index in (1, 0, 2, 4, 3)]
    candidate_lines = [line for line in prompt.splitlines() if line[:1] == "["]
    assert [line.split("]")[0] for line in candidate_lines] == ["[1", "[2", "[3", "[4", "[5"]
    assert "{{ labels }}" in prompt or "{% for x in labels %}" in prompt


# bad input ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arguments, message", [
    (["--top-k", "25", "--labels", "numbers"], "--top-k 25 must be between 2 and the catalogue's 24 items"),
    (["--top-k", "5"], "score label ' C' is not one token"),
    (["--top-k", "5", "--labels", LABELS, "--template", "{no_labels}"], "does not use labels"),
    (["--top-k", "5", "--labels", "A,A,B,D,G"], "labels must be distinct"),
    (["--top-k", "5", "--labels", LABELS, "--alpha", "1.5"], "--alpha must be between 0"),
])
def test_bad_input_is_one_line_exit_2_and_no_run(base, tiny_llama, tmp_path, arguments, message):
    no_labels = tmp_path / "no_labels.jinja"
    no_labels.write_text("{% for title in history %}{{ title }}{% endfor %} {{ candidates | join(', ') }}")
    arguments = [str(no_labels) if value == "{no_labels}" else value for value in arguments]
    result = runner.invoke(app, ["rerank", str(base), "--llm", str(tiny_llama), *arguments])
    last = result.stderr.strip().splitlines()[-1]  # (transformers may print its loading bar before)
    assert result.exit_code == 2 and last.startswith("error:") and message in last
    assert open_store().list_runs(kind="rerank") == []


def test_a_base_that_is_not_a_finished_training_run_is_refused(base, tiny_llama):
    evaluated = evaluate_run(base, noise="deletion")
    with pytest.raises(SeqrecError, match=f"run {evaluated} is a finished evaluate run"):
        rerank(evaluated, str(tiny_llama))
    assert open_store().list_runs(kind="rerank") == []


# the command and the stage --------------------------------------------------------------------------------------
def test_the_cli_prints_reranked_and_base_numbers_and_a_repeat_is_reused(base, tiny_llama, template):
    arguments = ["rerank", f"run:{base}", "--llm", str(tiny_llama), "--top-k", "5", "--labels", LABELS,
                 "--template", template, "--users", "12", "--noise", "deletion"]
    first = runner.invoke(app, arguments)
    assert first.exit_code == 0, first.output
    lines = [line for line in first.stdout.splitlines() if line.strip()]  # (a finished progress bar leaves a blank)
    assert lines[0].split() == ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]
    assert lines[1].startswith("re-ranked") and lines[2].startswith("base")
    assert "12 users; answers parsed 12, repaired 0, fallen back 0" in first.stdout and "written by" in first.stdout
    again = runner.invoke(app, arguments)
    assert again.exit_code == 0 and "reused from" in again.stdout


def test_a_rerank_experiment_reranks_the_runs_it_names_and_reports_them(tmp_path, tiny_llama, template):
    path = experiments_file(tmp_path, f"""
[models.tiny]
alias = "{tiny_llama}"

[prompts.short]
template = "{template}"

[experiments.study-rerank]
stage = "rerank"
after = ["study-noise"]
model = "tiny"
prompt = "short"
params = {{ of = "study", item_emb = "id", top_k = 5, labels = "{LABELS}", users = 20 }}
grid = {{ noise = ["none", "deletion"] }}
""")
    dry = runner.invoke(app, ["run", "study-rerank", "--file", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "waiting" in dry.stdout, dry.output
    first = runner.invoke(app, ["run", "study-rerank", "--file", str(path)])
    assert first.exit_code == 0, first.output
    reranked = open_store().list_runs(kind="rerank", experiment="study-rerank")
    # seed 0's SASRec and GRU4Rec, each on clean and noisy histories
    assert sorted((run.config["model"], str(run.config["noise"])) for run in reranked) == [
        ("gru4rec", "None"), ("gru4rec", "deletion"), ("sasrec", "None"), ("sasrec", "deletion")]
    again = runner.invoke(app, ["run", "study-rerank", "--file", str(path)])
    assert again.exit_code == 0 and "to do" not in again.stdout
    assert len(open_store().list_runs(kind="rerank", limit=None)) == 4
    report = runner.invoke(app, ["report", "--table", "noise", "--experiment", "study-rerank"])
    assert report.exit_code == 0, report.output
    assert "| sasrec, noise=deletion, rerank=llama/logprobs, users=20 |" in report.stdout
    assert "| sasrec, noise=deletion, users=20 |" in report.stdout
