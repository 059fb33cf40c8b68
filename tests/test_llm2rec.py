"""LLM2Rec stages on tiny models: texts and loss masks, each stage learning, chaining by run:ID, resuming."""

import numpy as np
import pytest
import torch
from llm_fixtures import TITLES, killed_on_call, movies, tiny_llama, tiny_qwen2  # noqa: F401  (fixtures)
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.llm import llm2rec
from seqrec.data.prepare import load_dataset
from seqrec.llm.embed import pad_token_id, tokenize
from seqrec.llm.encoder import ItemTextEncoder, contrastive_loss
from seqrec.llm.llm2rec import NextTitleObjective, PaddedTexts, encode_history, train_embedder
from seqrec.recsys.runner import train_model
from seqrec.store import open_store

FAST = dict(epochs=3, batch_size=6, lr=3e-3, max_examples=60, valid_examples=12, max_length=48)


def test_the_history_text_ends_with_the_target_and_the_oldest_tokens_go_first(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    ids, start = encode_history(tokenizer, ["Heat (1995)", "Casino (1995)"], "Fargo (1996)", max_length=64)
    assert tokenizer.decode(ids[:start]) == "Heat (1995), Casino (1995), "
    assert tokenizer.decode(ids[start:]) == "Fargo (1996)</s>"
    short, short_start = encode_history(tokenizer, ["Heat (1995)", "Casino (1995)"], "Fargo (1996)", max_length=12)
    assert len(short) == 12 and short[short_start:] == ids[start:]
    assert 0 < short_start < start and short[:short_start] == ids[start - short_start:start]  # the newest kept


def test_the_csft_loss_counts_only_the_target_tokens(tiny_llama):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    texts = PaddedTexts([encode_history(tokenizer, ["Heat (1995)"], "Up (2009)", 64),
                         encode_history(tokenizer, ["Babe (1995)", "Cars (2006)"], "Alien (1979)", 64)], pad_id=0)
    ids, mask, starts = texts.collate([texts[0], texts[1]])
    with torch.no_grad():
        loss = NextTitleObjective(model)(ids, mask, starts)
        logits = model(input_ids=ids, attention_mask=mask).logits
    labels = ids.masked_fill((torch.arange(ids.shape[1]) < starts[:, None]) | (mask == 0), -100)
    vocabulary = logits.shape[-1]
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocabulary), labels[:, 1:].reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert (labels != -100).sum() == sum(len(t) - s for t, s in (texts[0], texts[1]))
    # the same loss through LoRA adapters (which start as a no-op)
    from peft import LoraConfig, get_peft_model

    adapted = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    with torch.no_grad():
        assert NextTitleObjective(adapted)(ids, mask, starts).item() == pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("stage", ["csft", "mntp", "ic"])
def test_each_stage_lowers_its_validation_loss(tiny_qwen2, movies, stage):
    (run_id,) = train_embedder(str(tiny_qwen2), movies, stage, **FAST)
    store = open_store()
    assert store.get_run(run_id).status == "finished"
    losses = [metric.value for metric in store.metrics(run_id, split="valid", key="loss")]
    assert len(losses) == FAST["epochs"] + 1 and losses[-1] < losses[0]  # step 0: the model as loaded
    assert store.artifacts(run_id, kind="model")
    assert not (store.run_dir(run_id) / "checkpoint").exists()


def test_csft_then_iem_chains_runs_and_the_embeddings_train_sasrec(tiny_llama, movies):
    (csft,) = train_embedder(str(tiny_llama), movies, "csft", **{**FAST, "epochs": 1})
    result = CliRunner().invoke(app, ["embed", "train", "--model", f"run:{csft}", "--dataset", movies, "--stage",
                                      "iem", "--epochs", "1", "--batch-size", "6", "--max-examples", "30",
                                      "--valid-examples", "6"])
    assert result.exit_code == 0, result.output
    store = open_store()
    mntp, ic = (run for run in store.list_runs(kind="llm2rec")[::-1][1:])
    assert (mntp.config["stage"], ic.config["stage"]) == ("mntp", "ic")
    assert mntp.config["model"] == f"run:{csft}" and ic.config["model"] == f"run:{mntp.id}"
    assert [link.input_run_id for link in store.inputs(ic.id)] == [mntp.id]  # lineage follows the chain
    embeddings = np.load(store.artifacts(ic.id, kind="item-embeddings")[0].path)
    assert embeddings.shape == (13, 32)
    (sasrec,) = train_model("sasrec", movies, seeds=[0], item_emb=f"run:{ic.id}", hidden=16, heads=2, layers=1,
                            epochs=1)
    assert store.get_run(sasrec).status == "finished"
    # the trained model is usable wherever a model is named
    result = CliRunner().invoke(app, ["embed", "items", "--model", f"run:{ic.id}", "--dataset", movies,
                                      "--attention", "bidirectional"])
    assert result.exit_code == 0, result.output


def test_an_interrupted_stage_resumes(tiny_qwen2, movies):
    # validations: step 0, epoch 1 (checkpointed), then killed in epoch 2's
    with killed_on_call(llm2rec.LossValidation, "__call__", call=3), pytest.raises(KeyboardInterrupt):
        train_embedder(str(tiny_qwen2), movies, "mntp", **FAST)
    (interrupted,) = open_store().list_runs(kind="llm2rec", status="interrupted")
    assert train_embedder("ignored", None, "mntp", resume=interrupted.id) == [interrupted.id]
    assert len(open_store().metrics(interrupted.id, split="valid", key="loss")) == FAST["epochs"] + 1


@pytest.mark.parametrize("args, message", [
    (["--stage", "sft"], "unknown stage 'sft'"),
    (["--stage", "mntp", "--mask-prob", "0"], "mask_prob = 0.0 is out of range"),
    (["--stage", "ic", "--batch-size", "1"], "at least 2 items"),
    (["--stage", "csft", "--train-layers", "1"], "--train-layers serves the ic stage"),
])
def test_bad_options_are_one_clear_line(tiny_llama, movies, args, message):
    result = CliRunner().invoke(app, ["embed", "train", "--model", str(tiny_llama), "--dataset", movies, *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_csft_examples_pair_the_newest_history_with_the_item_that_follows_it(movies):
    data = load_dataset(movies)
    for split in ("train", "valid"):
        examples = llm2rec.history_examples(data, split, llm2rec.LLM2RecConfig(max_history=2), 40, seed=0)
        assert examples
        for history, target in examples:
            assert 1 <= len(history) <= 2
            chain = [TITLES.index(title) for title in [*history, target]]
            # the fixture's users watch consecutive titles
            assert all(b == (a + 1) % len(TITLES) for a, b in zip(chain, chain[1:])), (history, target)


def test_mntp_predicts_the_masked_tokens_from_masked_input(monkeypatch):
    seen = {}

    def capture(model, ids, mask, labels):
        seen.update(ids=ids, labels=labels)
        return torch.tensor(0.0)

    monkeypatch.setattr(llm2rec, "labelled_token_loss", capture)
    torch.manual_seed(0)
    ids = torch.randint(5, 50, (4, 12))
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0
    llm2rec.MaskedNextTokenObjective(None, mask_token_id=99, mask_prob=0.4)(ids, mask, torch.zeros(4))
    chosen = seen["labels"] != -100
    assert chosen.any() and not chosen[:, 0].any() and (mask[chosen] == 1).all()
    assert torch.equal(seen["labels"][chosen], ids[chosen])
    assert (seen["ids"][chosen] == 99).all() and torch.equal(seen["ids"][~chosen], ids[~chosen])


def test_mntp_and_ic_attend_both_ways_and_csft_causally():
    assert [llm2rec.resolve_options(stage, {})[0].attention for stage in ("csft", "mntp", "ic")] == \
        ["causal", "bidirectional", "bidirectional"]


def test_ic_contrasts_two_dropout_views_of_each_item(tiny_qwen2):
    config, _ = llm2rec.resolve_options("ic", {"dropout": 0.3, "ic_temperature": 0.2})
    model, tokenizer = llm2rec.load_for_stage(str(tiny_qwen2), "ic", config)
    encoder = ItemTextEncoder(model, tokenize(tokenizer, TITLES, "mean", 16), pad_token_id(tokenizer), "mean")
    objective = llm2rec.ContrastiveObjective(encoder, 0.2).train()
    items = torch.tensor([2, 4, 6, 8, 10])
    torch.manual_seed(3)
    loss = objective(items)
    torch.manual_seed(3)
    first, second = encoder(items), encoder(items)
    assert not torch.allclose(first, second)
    assert loss.item() == pytest.approx(contrastive_loss(first, second, 0.2).item(), rel=1e-5)
