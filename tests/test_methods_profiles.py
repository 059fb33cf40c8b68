"""User-profile distillation: profiles from training interactions only, context fitting by halving, the call cache,
user embeddings, and the guide loss (padding-free pools, the stop-gradient, users without profiles, no profile at
inference), end to end through the CLI on a tiny chat model and the walk dataset."""

import math
import re

import numpy as np
import pytest
import torch
from llm_fixtures import chat_model, killed_on_call, make_movies_dataset  # noqa: F401  (fixtures)
from llm_servers import scripted_server
from recsys_fixtures import interrupt_at_evaluation
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.data.prepare import load_dataset
from seqrec.errors import SeqrecError
from seqrec.llm.backends import CachedLLM, Generation
from seqrec.llm.backends.options import LLMOptions
from seqrec.methods.profiles import (
    ProfileWriter,
    PromptBuilder,
    embed_profiles,
    generate_profiles,
    is_e5,
    load_profiles,
    show_profile,
    write_agg_after,
    write_agg_with,
)
from seqrec.recsys.configs import ProfileConfig, SASRecConfig
from seqrec.recsys.evaluate import Evaluator
from seqrec.recsys.guide import ProfileGuided, pool_states
from seqrec.recsys.models.sasrec import SASRec
from seqrec.recsys.runner import train_model
from seqrec.store import open_store

TITLE = re.compile(r"title: (Item number \d+)")
FAST = {"hidden": 16, "heads": 2, "layers": 2, "epochs": 3, "batch_size": 32, "lr": 1e-2, "dropout": 0.1,
        "patience": 100}


@pytest.fixture
def walk_profiles(walk, chat_model):
    return generate_profiles("walk", str(chat_model), max_tokens=4, users=12)


@pytest.fixture
def walk_embeddings(walk_profiles, chat_model):
    return embed_profiles(walk_profiles.run_id, str(chat_model), reduce="pca:4")


def recorded_requests(monkeypatch) -> list[tuple[int, str]]:
    """Every (user, prompt text) the profile writer sends, in order."""
    sent = []
    original = ProfileWriter.generate

    def recording(self, requests):
        sent.extend((user, messages[0]["content"]) for user, messages in requests)
        return original(self, requests)

    monkeypatch.setattr(ProfileWriter, "generate", recording)
    return sent


# prompts -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["agg_after", "agg_with"])
def test_no_validation_or_test_item_of_a_user_reaches_their_prompts(walk, chat_model, monkeypatch, strategy):
    sent = recorded_requests(monkeypatch)
    generate_profiles("walk", str(chat_model), strategy=strategy, max_tokens=4, context_length=700, users=10)
    data = load_dataset("walk")
    titles = data.titles()
    held_out = {}
    for split in (data.valid, data.test):
        for user, target in zip(split["user"], split["target"]):
            held_out.setdefault(int(user), set()).add(titles[int(target)])
    training = {int(user): {titles[int(item)] for item in items}
                for user, items in zip(data.train["user"], data.train["items"]) if user <= 10}
    seen = {}
    for user, text in sent:
        seen.setdefault(user, set()).update(TITLE.findall(text))
    assert set(seen) == set(training)
    for user, shown in seen.items():
        assert not shown & held_out[user]
        assert shown == training[user]  # every training interaction, across the parts of a long history
    assert any(text.count("title:") < len(training[user]) for user, text in sent)  # some history was cut


def test_max_items_keeps_each_users_most_recent_training_interactions(walk, chat_model, monkeypatch):
    sent = recorded_requests(monkeypatch)
    generate_profiles("walk", str(chat_model), max_tokens=4, users=3, max_items=2)
    data = load_dataset("walk")
    titles = data.titles()
    newest = {int(user): [titles[int(item)] for item in items[-2:]]
              for user, items in zip(data.train["user"], data.train["items"]) if user <= 3}
    assert {user: TITLE.findall(text) for user, text in sent} == newest


def test_a_prompt_shows_every_item_field_and_the_users_ratings(tmp_path, chat_model, monkeypatch):
    make_movies_dataset(tmp_path / "raw")
    sent = recorded_requests(monkeypatch)
    generate_profiles("movies", str(chat_model), prompt="long", max_tokens=4, users=1)
    data = load_dataset("movies")
    assert "ratings" in data.train.columns
    text = sent[0][1]
    first = int(data.train["items"][0][0])
    row = data.items.set_index("item").loc[first]
    assert f"title: {row['title']} | genres: {row['genre']} | rated 5/5" in text
    assert "five paragraphs" in text and "movies" in text


def test_amazon_items_show_every_field_with_long_text_cut_and_the_products_wording():
    import pandas as pd

    from seqrec.methods.profiles import FIELD_CHARACTERS, dataset_family, item_fields

    items = pd.DataFrame({"item": [1, 2], "source_id": ["a", "b"], "title": ["Blue Kettle", "Mug"],
                          "categories": ["Home > Kitchen", ""], "description": ["word " * 200, "A mug."]})
    fields = item_fields(items)
    assert [label for label, _ in fields[1]] == ["title", "categories", "description"]
    assert len(fields[1][2][1]) <= FIELD_CHARACTERS + 4 and fields[1][2][1].endswith(" ...")
    assert fields[2] == [("title", "Mug"), ("description", "A mug.")]  # an empty field is left out
    assert dataset_family("amazon2023", items.columns) == "amazon"
    assert dataset_family("csv", ["item", "title", "genre"]) == "movielens"
    builder = PromptBuilder("long", "amazon", lambda messages: 0, context_length=100, max_tokens=10)
    text = builder.messages("profile", [{"fields": fields[1], "rating": None}])[0]["content"]
    assert "shopping platform" in text and "categories: Home > Kitchen" in text and "| rated" not in text


def fits_below(items_allowed: int):
    """A token count under which a profile prompt holds at most ``items_allowed`` items in PromptBuilder(..., 300,
    max_tokens=20): 10 tokens an item, 40 more for an update prompt's profile markers."""
    return lambda messages: 280 - 10 * items_allowed + 10 * messages[0]["content"].count("title:") + (
        40 if "<profile>" in messages[0]["content"] else 0)


def history(count):
    return [{"fields": [("title", f"Item number {index}")], "rating": "4"} for index in range(count)]


def test_agg_after_halves_a_history_until_every_part_fits():
    builder = PromptBuilder("short", "amazon", fits_below(5), context_length=300, max_tokens=20)
    parts = builder.chunks(history(20), "agg_after", user=1)
    assert [len(part) for part in parts] == [5, 5, 5, 5]
    assert [item for part in parts for item in part] == history(20)
    assert builder.chunks(history(5), "agg_after", user=1) == [history(5)]


def test_agg_with_parts_leave_room_for_the_profile_so_far():
    builder = PromptBuilder("short", "amazon", fits_below(10), context_length=300, max_tokens=20)
    parts = builder.chunks(history(20), "agg_with", user=1)
    # the markers (40) and a previous profile of max_tokens plus a margin (28) leave room for 3 items, not 10
    assert [len(part) for part in parts] == [2, 3, 2, 3, 2, 3, 2, 3]
    assert [item for part in parts for item in part] == history(20)


def test_one_item_too_long_for_the_context_is_refused_by_user():
    builder = PromptBuilder("short", "amazon", lambda messages: 1_000, context_length=300, max_tokens=20)
    with pytest.raises(SeqrecError, match="user 7: one interaction alone does not fit a 300-token context"):
        builder.chunks(history(3), "agg_after", user=7)


class ScriptedLLM:
    """A cached-LLM stand-in that answers each prompt with a numbered text and keeps the prompts."""

    def __init__(self):
        self.prompts = []

    def generate(self, prompts, decoding):
        answers = []
        for messages in prompts:
            self.prompts.append(messages[0]["content"])
            answers.append(Generation(text=f"profile {len(self.prompts)}", finish_reason="stop", prompt_tokens=1,
                                      completion_tokens=2))
        return answers


def test_agg_after_profiles_every_part_then_merges_them_in_one_call():
    llm = ScriptedLLM()
    builder = PromptBuilder("long", "movielens", lambda messages: 10, context_length=300, max_tokens=20)
    writer = ProfileWriter(llm, None, slice_size=3, progress=lambda count: None)
    chunks = {1: [history(2), history(2), history(2)], 2: [history(1)]}
    profiles = write_agg_after(writer, builder, chunks)
    assert len(llm.prompts) == 4 + 1  # four parts in one round, then one aggregation
    assert "profile 1" in llm.prompts[-1] and "profile 3" in llm.prompts[-1] and "Merge the parts" in llm.prompts[-1]
    assert profiles == {1: "profile 5", 2: "profile 4"}


def test_agg_with_updates_the_profile_with_each_further_part():
    llm = ScriptedLLM()
    builder = PromptBuilder("short", "amazon", lambda messages: 10, context_length=300, max_tokens=20)
    writer = ProfileWriter(llm, None, slice_size=8, progress=lambda count: None)
    profiles = write_agg_with(writer, builder, {1: [history(1), history(2), history(3)], 2: [history(1)]})
    assert len(llm.prompts) == 2 + 1 + 1  # first profiles of both users, then two updates of user 1
    assert "<profile>\nprofile 1\n</profile>" in llm.prompts[2]
    assert "<profile>\nprofile 3\n</profile>" in llm.prompts[3]
    assert profiles == {1: "profile 4", 2: "profile 2"}


# the cache, the run, the artifact ----------------------------------------------------------------------------
def test_an_interrupted_generation_resumes_from_the_cache_and_a_repeat_costs_nothing(walk, chat_model):
    options = {"max_tokens": 4, "users": 12, "batch_size": 2}  # slices of 8 prompts: the first is cached when killed
    with killed_on_call(CachedLLM, "generate", call=2), pytest.raises(KeyboardInterrupt):
        generate_profiles("walk", str(chat_model), **options)
    store = open_store()
    (interrupted,) = store.list_runs(kind="profiles")
    assert interrupted.status == "interrupted"
    first = generate_profiles("walk", str(chat_model), **options)
    counts = store.final_metrics(first.run_id)["llm"]
    assert counts["llm_cache_hits"] >= 8 and counts["llm_fresh_calls"] <= 12 - 8 + 1
    calls = len(store.llm_calls())
    again = generate_profiles("walk", str(chat_model), **options)
    assert again.cached and again.run_id == first.run_id and len(store.llm_calls()) == calls
    afresh = generate_profiles("walk", LLMOptions(llm=str(chat_model), no_cache=True), **options)  # --no-cache
    assert not afresh.cached and afresh.run_id != first.run_id
    assert store.final_metrics(afresh.run_id)["llm"]["llm_cache_hits"] == 0 and len(store.llm_calls()) == calls + 12
    profiles = load_profiles(first.run_id)
    assert sorted(profiles) == list(range(1, 13))
    assert show_profile(f"run:{first.run_id}", 3) == profiles[3]


def test_an_endpoint_that_fails_midway_stops_the_run_and_keeps_what_was_generated(walk, chat_model):
    with scripted_server([("ok", "a profile")] * 5 + [("status", 400)]) as server:
        endpoint = LLMOptions(endpoint=server.url, endpoint_model="m")
        options = {"users": 6, "batch_size": 1, "context_length": 8192,
                   "tokenizer": str(chat_model)}  # the served model's tokenizer fits the prompts
        with pytest.raises(SeqrecError, match="profile generation failed for user .* run the same command again"):
            generate_profiles("walk", endpoint, **options)
        store = open_store()
        assert store.list_runs(kind="profiles")[0].status == "failed"
        assert not list(store.run_dir(store.list_runs(kind="profiles")[0].id).glob("profiles.json"))
        result = generate_profiles("walk", endpoint, **options)
    assert store.final_metrics(result.run_id)["llm"]["llm_cache_hits"] == 5
    assert open_store().get_run(result.run_id).config["tokens_counted_by"] == f"tokenizer:{chat_model}"
    texts = sorted(load_profiles(result.run_id).values())
    assert texts == ["a profile"] * 5 + ["ok"]  # the failed request, sent again, got the server's default answer


def test_bad_generation_options_are_one_line_errors(walk, chat_model):
    runner = CliRunner()
    result = runner.invoke(app, ["profiles", "generate", "--dataset", "walk", "--llm", str(chat_model),
                                 "--prompt", "medium"])
    assert result.exit_code == 2 and "--prompt must be one of short, long" in result.output
    result = runner.invoke(app, ["profiles", "generate", "--dataset", "walk", "--llm", str(chat_model),
                                 "--max-items", "0"])
    assert result.exit_code == 2 and "--max-items must be at least 1, not 0" in result.output
    result = runner.invoke(app, ["profiles", "show", "1", "--user", "1"])
    assert result.exit_code == 2 and "no run with id 1" in result.output


# embeddings --------------------------------------------------------------------------------------------------
def test_user_embeddings_are_one_row_per_user_and_reused(walk_profiles, walk_embeddings, chat_model):
    with np.load(walk_embeddings.path) as stored:
        matrix, present = stored["matrix"], stored["present"]
    assert matrix.shape == (41, 4) and present.sum() == 12 and present[1:13].all() and not matrix[~present].any()
    assert "stands in for multilingual-e5-large" in walk_embeddings.note
    again = embed_profiles(walk_profiles.run_id, str(chat_model), reduce="pca:4")
    assert again.cached and again.run_id == walk_embeddings.run_id


def test_e5_models_are_recognised_by_name():
    assert is_e5("e5-large") and is_e5("intfloat/multilingual-e5-large") and is_e5("intfloat/e5-base-v2")
    assert not is_e5("all-minilm-l6-v2") and not is_e5("smollm2-135m-instruct")


@pytest.mark.slow
def test_umap_is_seeded(walk_profiles, chat_model):
    first = embed_profiles(walk_profiles.run_id, str(chat_model), reduce="umap:2", seed=3)
    matrix = np.load(first.path)["matrix"]
    open_store().delete_run(first.run_id)
    second = embed_profiles(walk_profiles.run_id, str(chat_model), reduce="umap:2", seed=3)
    assert second.run_id != first.run_id and np.array_equal(np.load(second.path)["matrix"], matrix)


# the guide loss ----------------------------------------------------------------------------------------------
def test_every_pool_leaves_padding_out():
    states = torch.tensor([[[1000.0, -1000.0], [1.0, 2.0], [3.0, 0.0], [5.0, 4.0]]])
    real = torch.tensor([[False, True, True, True]])
    assert torch.allclose(pool_states(states, real, "mean"), torch.tensor([[3.0, 2.0]]))
    weights = [math.exp(0.1 * position) for position in (1, 2, 3)]
    expected = [sum(w * v for w, v in zip(weights, column)) / sum(weights) for column in ([1, 3, 5], [2, 0, 4])]
    assert torch.allclose(pool_states(states, real, "exp"), torch.tensor([expected]))
    assert torch.allclose(pool_states(states, real, "last"), torch.tensor([[5.0, 4.0]]))
    query = torch.tensor([1.0, 0.0])
    logits = [value / math.sqrt(2) for value in (1.0, 3.0, 5.0)]
    weights = [math.exp(logit) for logit in logits]
    expected = [sum(w * v for w, v in zip(weights, column)) / sum(weights) for column in ([1, 3, 5], [2, 0, 4])]
    assert torch.allclose(pool_states(states, real, "attention", query), torch.tensor([expected]))


def guided_sasrec(profile_map="fixed", present=None, **options):
    torch.manual_seed(0)
    recommender = SASRec(10, SASRecConfig(hidden=8, heads=2, layers=2, dropout=0.0, max_len=5))
    matrix = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    present = np.array([False, True, True, True]) if present is None else np.asarray(present)
    config = ProfileConfig(profiles="run:1", profile_map=profile_map, profile_weight=0.5, **options)
    return ProfileGuided(recommender, config, matrix, present, seed=0)


BATCH = (torch.tensor([1, 2]), torch.tensor([[0, 0, 3, 4, 5], [0, 1, 2, 6, 7]]),
         torch.tensor([[0, 0, 4, 5, 6], [0, 2, 6, 7, 8]]))


def test_the_profile_side_gets_no_gradient_and_the_recommender_does():
    model = guided_sasrec()
    profiles = model.profiles.clone()
    model(*BATCH).backward()
    assert model.map.weight.grad is None and not model.map.weight.requires_grad
    assert torch.equal(model.profiles, profiles)
    assert model.recommender.encoder.blocks[0].attention.qkv.weight.grad.abs().sum() > 0
    trainable = guided_sasrec("trainable")
    trainable(*BATCH).backward()
    assert trainable.map.weight.grad.abs().sum() > 0  # the paper's joint map, kept for comparison


def test_users_without_a_profile_contribute_nothing_to_the_guide():
    model = guided_sasrec(present=[False, True, False, True])
    users, histories, targets = BATCH
    _, states, real = model.loss_with_states(users, histories, targets)
    both = model.guide_loss(users, states, real)
    alone = model.guide_loss(users[:1], states[:1], real[:1])
    assert torch.allclose(both, alone)  # user 2 is left out of the mean, not a zero error in it
    nobody = guided_sasrec(present=[False, False, False, False])
    loss = nobody(*BATCH)
    assert torch.allclose(loss, 0.5 * nobody.recommender.loss(*BATCH))


def test_the_guide_switches_off_after_the_distillation_epochs():
    model = guided_sasrec(distill_epochs=2)
    model.start_epoch(1)
    assert not torch.allclose(model(*BATCH), model.recommender.loss(*BATCH))
    model.start_epoch(2)
    assert torch.equal(model(*BATCH), model.recommender.loss(*BATCH))


def test_scores_never_read_a_profile():
    model = guided_sasrec().eval()
    users, histories, _ = BATCH
    before = model.scores(users, histories)
    model.profiles.normal_()
    model.present.fill_(False)
    assert torch.equal(model.scores(users, histories), before)
    assert torch.equal(model.recommender.scores(users, histories), before)


def test_a_distilled_run_saves_a_plain_recommender_that_evaluate_reloads(walk_embeddings):
    from seqrec.recsys.runner import evaluate_run

    (run_id,) = train_model("sasrec", "walk", seeds=[0], profiles=f"run:{walk_embeddings.run_id}",
                            profile_pool="exp", distill_epochs=2, report_last_epoch=True, **FAST)
    store = open_store()
    metrics = store.final_metrics(run_id)
    assert metrics["profiles"] == {"users_with_profile": 12.0, "users_without_profile": 28.0}
    assert set(metrics["test_last"]) == set(metrics["test"])
    (model,) = store.artifacts(run_id, kind="model")
    weights = torch.load(model.path, weights_only=True)
    assert not any(key.startswith(("map", "recommender")) for key in weights)
    assert store.final_metrics(evaluate_run(run_id))["test"] == metrics["test"]
    assert {row.artifact_id for row in store.inputs(run_id)} >= {store.artifacts(walk_embeddings.run_id)[0].id}


def test_a_resumed_distilled_run_ends_with_the_same_metrics(walk_embeddings, monkeypatch):
    hyper = {**FAST, "epochs": 4, "profiles": f"run:{walk_embeddings.run_id}", "distill_epochs": 2}
    (uninterrupted,) = train_model("sasrec", "walk", seeds=[1], **hyper)
    original = interrupt_at_evaluation(monkeypatch, call=3)  # epoch 3 of 4: after the guide switched off
    with pytest.raises(KeyboardInterrupt):
        train_model("sasrec", "walk", seeds=[1], **hyper)
    monkeypatch.setattr(Evaluator, "evaluate", original)
    store = open_store()
    interrupted = store.list_runs(kind="train", status="interrupted")[0].id
    train_model("sasrec", None, resume=interrupted)
    assert store.final_metrics(interrupted)["test"] == pytest.approx(store.final_metrics(uninterrupted)["test"],
                                                                     abs=1e-6)


def test_distillation_options_are_checked_against_the_model_and_the_data(walk, walk_embeddings, tmp_path):
    profiles = f"run:{walk_embeddings.run_id}"
    cases = [({"profile_weight": 1.5}, r"profile_weight = 1.5 is out of range \[0.0, 1.0\]"),
             ({"profile_layer": 3}, "--profile-layer 3: sasrec has 2 transformer block"),
             ({"distill_epochs": 4}, "--distill-epochs 4 is beyond --epochs 3"),
             ({"profile_map": "none"}, "4-dimensional but the model's hidden size is 16")]
    for options, message in cases:
        with pytest.raises(SeqrecError, match=message):
            train_model("sasrec", "walk", seeds=[0], profiles=profiles, **{**FAST, **options})
    with pytest.raises(SeqrecError, match="applies to sasrec and bert4rec, not gru4rec"):
        train_model("gru4rec", "walk", seeds=[0], profiles=profiles, hidden=16, epochs=1)
    make_movies_dataset(tmp_path / "raw")
    with pytest.raises(SeqrecError, match="made for dataset 'walk'"):
        train_model("sasrec", "movies", seeds=[0], profiles=profiles, **FAST)
    assert not open_store().list_runs(kind="train")


@pytest.mark.parametrize("options, message", [
    (["--profile-layer", "3"], "--profile-layer 3: sasrec has 2 transformer block(s); choose 1 to 2"),
    (["--distill-epochs", "4"], "--distill-epochs 4 is beyond --epochs 3"),
    (["--profile-map", "none"], "--profile-map none: the profile embeddings are 4-dimensional"),
    (["--profile-weight", "-0.1"], "profile_weight = -0.1 is out of range [0.0, 1.0]"),
    (["--profiles", "PROFILES_RUN"], "is a finished profiles run without user embeddings; give the run of "
                                     "`seqrec profiles embed`"),
])
def test_bad_distillation_options_are_one_line_exit_2_and_no_run(walk_profiles, walk_embeddings, options, message):
    arguments = ["train", "sasrec", "--dataset", "walk", "--profiles", f"run:{walk_embeddings.run_id}",
                 "--epochs", "3", "--hidden", "16", "--layers", "2"]
    arguments += [f"run:{walk_profiles.run_id}" if option == "PROFILES_RUN" else option for option in options]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert len(result.output.strip().splitlines()) == 1 and not open_store().list_runs(kind="train")


def test_embedding_profiles_of_a_dataset_prepared_again_is_refused(walk_profiles, chat_model, tmp_path):
    store = open_store()
    run = store.get_run(walk_profiles.run_id)
    store.update_run(run.id, config={**run.config, "dataset_fingerprint": "an earlier version"})
    with pytest.raises(SeqrecError, match="were made for an earlier version of dataset 'walk'; generate them again"):
        embed_profiles(walk_profiles.run_id, str(chat_model), reduce="none")
    assert not store.list_runs(kind="embed-profiles")


# the whole path through the CLI ------------------------------------------------------------------------------
def test_generate_show_embed_and_distil_through_the_cli(walk, chat_model):
    runner = CliRunner()

    def run(*arguments):
        result = runner.invoke(app, list(arguments))
        assert result.exit_code == 0, result.output
        return result.output

    output = run("profiles", "generate", "--dataset", "walk", "--llm", str(chat_model), "--users", "6",
                 "--max-tokens", "4", "--strategy", "agg_with", "--prompt", "long")
    profiles_run = re.search(r"run (\d+)\)", output).group(1)
    assert run("profiles", "show", profiles_run, "--user", "2").strip() == load_profiles(profiles_run)[2].strip()
    output = run("profiles", "embed", "--profiles", f"run:{profiles_run}", "--encoder", str(chat_model),
                 "--reduce", "none")
    embed_run = re.search(r"run (\d+)\)", output).group(1)
    run("train", "bert4rec", "--dataset", "walk", "--profiles", f"run:{embed_run}", "--profile-weight", "0.5",
        "--profile-layer", "1", "--profile-pool", "attention", "--profile-loss", "cos", "--distill-epochs", "1",
        "--scale-guide", "--epochs", "2", "--hidden", "16", "--layers", "1")
    (train_run,) = open_store().list_runs(kind="train")
    assert train_run.status == "finished" and train_run.config["profile_loss"] == "cos"
    result = runner.invoke(app, ["train", "sasrec", "--dataset", "walk", "--profiles", f"run:{embed_run}",
                                 "--profile-weight", "2"])
    assert result.exit_code == 2 and "profile_weight = 2.0 is out of range" in result.output
