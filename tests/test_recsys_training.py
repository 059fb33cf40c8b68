import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recsys_fixtures import interrupt_at_evaluation
from seqrec.cli import app
from seqrec.data.batches import BatchIndexedTensors
from seqrec.errors import SeqrecError
from seqrec.recsys.evaluate import Evaluator
from seqrec.recsys.metrics import FULL_METRICS
from seqrec.recsys.runner import evaluate_run, train_config, train_model
from seqrec.store import open_store
from seqrec.store.hashing import config_hash
from seqrec.training.accelerator import leave_job

FAST = dict(hidden=32, heads=2, layers=1, epochs=30, batch_size=32, lr=1e-2, dropout=0.1, patience=100)
# (no early stopping in these tests: every run trains all its epochs)
RECURRENT_OR_CONVOLUTIONAL = ("gru4rec", "caser")


@pytest.mark.parametrize("model, options", [("sasrec", {}), ("sasrec", {"norm": "post"}), ("gru4rec", {}),
                                            ("caser", {}), ("bert4rec", {}), ("sasrec", {"objective": "last"}),
                                            ("gru4rec", {"objective": "last"}), ("caser", {"objective": "last"})])
def test_every_model_learns_the_walk(walk, model, options):
    hyper = {k: v for k, v in FAST.items() if not (model in RECURRENT_OR_CONVOLUTIONAL and k in ("heads", "layers"))}
    hyper.update(options)
    if model == "bert4rec":
        hyper["epochs"] = 80  # masked-item training needs more passes over 40 users
    (run_id,) = train_model(model, "walk", seeds=[0], **hyper)
    store = open_store()
    losses = [m.value for m in store.metrics(run_id, split="train", key="loss")]
    assert len(losses) == hyper["epochs"] and losses[-1] < losses[0]
    test = store.final_metrics(run_id)["test"]
    assert set(test) >= {"recall@10", "ndcg@10", "mrr"}
    assert test["recall@10"] > 0.6  # chance is 10 / 24
    assert store.get_run(run_id).status == "finished" and store.artifacts(run_id, kind="model")


def test_bf16_mixed_precision_after_a_float32_run_in_the_same_process(walk):
    """Accelerate's process-wide state must not pin the first run's precision (experiments.toml runs its steps in
    one process); bf16 training and evaluation still learn the walk."""
    train_model("sasrec", "walk", seeds=[0], **{**FAST, "epochs": 1})
    (run_id,) = train_model("sasrec", "walk", seeds=[0], mixed_precision="bf16", **FAST)
    store = open_store()
    assert store.get_run(run_id).config["hyper"]["mixed_precision"] == "bf16"
    assert store.final_metrics(run_id)["test"]["recall@10"] > 0.6


@pytest.mark.parametrize("objective", ["all", "last"])
def test_a_resumed_run_ends_with_the_same_metrics(walk, monkeypatch, objective):
    hyper = {**FAST, "epochs": 6, "objective": objective}
    (uninterrupted,) = train_model("sasrec", "walk", seeds=[1], **hyper)
    original = interrupt_at_evaluation(monkeypatch, call=3)
    with pytest.raises(KeyboardInterrupt):
        train_model("sasrec", "walk", seeds=[1], **hyper)
    store = open_store()
    interrupted = store.list_runs(status="interrupted")[0].id
    monkeypatch.setattr(Evaluator, "evaluate", original)
    train_model("sasrec", None, resume=interrupted)
    assert store.get_run(interrupted).status == "finished"
    expected = store.final_metrics(uninterrupted)["test"]
    resumed = store.final_metrics(interrupted)["test"]
    assert resumed == pytest.approx(expected, abs=1e-6)
    # it continued from the epoch-2 checkpoint (epoch 3 ran twice: interrupted in its validation, then again)
    assert [metric.step for metric in store.metrics(interrupted, split="train", key="loss")] == [1, 2, 3, 3, 4, 5, 6]


def test_sampled_evaluation_stores_and_reuses_candidates(walk):
    (first,) = train_model("gru4rec", "walk", seeds=[0], eval="sampled:5", hidden=16, epochs=2)
    files = list((open_store().settings.data_dir / "walk").glob("candidates-test-5-seed0.parquet"))
    assert len(files) == 1
    before = files[0].read_bytes()
    train_model("gru4rec", "walk", seeds=[0], eval="sampled:5", hidden=16, epochs=1)
    assert files[0].read_bytes() == before
    assert set(open_store().final_metrics(first)["test"]) == {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10"}


def test_evaluate_makes_a_linked_run_with_noise(walk):
    (trained,) = train_model("sasrec", "walk", seeds=[0], **FAST)
    evaluated = evaluate_run(trained, noise="deletion")
    store = open_store()
    run = store.get_run(evaluated)
    assert run.kind == "evaluate" and run.config["noise"] == "deletion" and run.config["source_run"] == trained
    assert [link.input_run_id for link in store.inputs(evaluated)] == [trained]
    assert "ndcg@10" in store.final_metrics(evaluated)["test"]


def test_frozen_item_embeddings_with_an_adapter(walk, tmp_path):
    matrix = np.random.default_rng(0).normal(size=(25, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", matrix)
    (run_id,) = train_model("sasrec", "walk", seeds=[0], item_emb=str(tmp_path / "emb.npy"), **FAST)
    config = open_store().get_run(run_id).config
    assert config["item_emb"] == str(tmp_path / "emb.npy") and len(config["item_emb_sha256"]) == 64
    np.save(tmp_path / "wrong.npy", matrix[:10])
    with pytest.raises(SeqrecError, match="needs 25 rows"):
        train_model("sasrec", "walk", item_emb=str(tmp_path / "wrong.npy"))


def scripted_validation(monkeypatch, scores_by_metric):
    """Validation returns scripted metrics (one value per call, per metric); the test split is evaluated for real.

    Records the model's weights at every evaluation and the options each Evaluator was built with.
    """
    original_init, original_evaluate = Evaluator.__init__, Evaluator.evaluate
    seen = {"valid": [], "test": [], "inits": []}

    def init(self, data, split, **options):
        original_init(self, data, split, **options)
        self.split = split
        seen["inits"].append((split, options.get("noise"), options.get("mask_seen_items")))

    def evaluate(self, model, accelerator):
        weights = {k: v.detach().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
        seen[self.split].append(weights)
        if self.split == "valid" and scores_by_metric is not None:
            call = len(seen["valid"]) - 1
            return {name: scores_by_metric[name][call] if name in scores_by_metric else 0.0 for name in FULL_METRICS}
        return original_evaluate(self, model, accelerator)

    monkeypatch.setattr(Evaluator, "__init__", init)
    monkeypatch.setattr(Evaluator, "evaluate", evaluate)
    return seen


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def saved_weights(run_id):
    return torch.load(open_store().artifacts(run_id, kind="model")[-1].path, weights_only=True)


def test_early_stopping_on_the_chosen_metric_restores_the_best_epoch(walk, monkeypatch):
    """mrr peaks at epoch 2 and ties at 3 (no improvement): three evaluations without improvement stop it after
    epoch 5. ndcg@10 keeps rising, so a loop that watched it instead would train all 10 epochs."""
    mrr = [0.1, 0.3, 0.3, 0.2, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9]
    ndcg = [0.1 * (i + 1) for i in range(10)]
    seen = scripted_validation(monkeypatch, {"mrr": mrr, "ndcg@10": ndcg})
    (run_id,) = train_model("sasrec", "walk", seeds=[0], **{**FAST, "epochs": 10, "patience": 3, "metric": "mrr"})
    store = open_store()
    assert [m.step for m in store.metrics(run_id, split="train", key="loss")] == [1, 2, 3, 4, 5]
    assert [m.step for m in store.metrics(run_id, split="test", key="mrr")] == [2]  # logged at the best epoch
    # the test split is scored with epoch 2's weights, not the last epoch's, and those are the saved model
    assert len(seen["test"]) == 1 and same_weights(seen["test"][0], seen["valid"][1])
    assert not same_weights(seen["test"][0], seen["valid"][4])
    assert same_weights(saved_weights(run_id), seen["valid"][1])


def test_eval_every_validates_only_every_nth_epoch_and_the_last(walk, monkeypatch):
    scripted_validation(monkeypatch, None)
    (run_id,) = train_model("sasrec", "walk", seeds=[0], **{**FAST, "epochs": 5, "eval_every": 2})
    assert [m.step for m in open_store().metrics(run_id, split="valid", key="ndcg@10")] == [2, 4, 5]


def test_a_run_killed_between_swapping_checkpoints_resumes_from_the_new_one(walk, monkeypatch):
    """A checkpoint is written beside the last one and then swapped in; a kill between putting the old one aside and
    moving the new one in leaves only the new one, under its temporary name, and resume finds it there."""
    hyper = {**FAST, "epochs": 4}
    (uninterrupted,) = train_model("sasrec", "walk", seeds=[1], **hyper)
    original = interrupt_at_evaluation(monkeypatch, call=3)
    with pytest.raises(KeyboardInterrupt):
        train_model("sasrec", "walk", seeds=[1], **hyper)
    store = open_store()
    interrupted = store.list_runs(status="interrupted")[0].id
    checkpoint = store.run_dir(interrupted) / "checkpoint"
    checkpoint.rename(checkpoint.with_name("checkpoint.partial"))
    monkeypatch.setattr(Evaluator, "evaluate", original)
    train_model("sasrec", None, resume=interrupted)
    assert [metric.step for metric in store.metrics(interrupted, split="train", key="loss")] == [1, 2, 3, 3, 4]
    assert store.final_metrics(interrupted)["test"] == pytest.approx(store.final_metrics(uninterrupted)["test"],
                                                                     abs=1e-6)
    assert (checkpoint / "loop.json").exists() and not checkpoint.with_name("checkpoint.partial").exists()


def test_resume_restores_the_best_score_and_patience_count(walk, monkeypatch):
    """Interrupted during the 4th validation, after the best (epoch 1) and two worse ones: on resume the 4th is the
    third without improvement, so training stops at epoch 4 keeping epoch 1's weights."""
    mrr = [0.5, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9]
    seen = scripted_validation(monkeypatch, {"mrr": mrr})
    scripted = interrupt_at_evaluation(monkeypatch, call=4)
    with pytest.raises(KeyboardInterrupt):
        train_model("sasrec", "walk", seeds=[0], **{**FAST, "epochs": 8, "patience": 3, "metric": "mrr"})
    store = open_store()
    run_id = store.list_runs(status="interrupted")[0].id
    monkeypatch.setattr(Evaluator, "evaluate", scripted)  # continues at call 4: mrr[3]
    train_model("sasrec", None, resume=run_id)
    assert [m.step for m in store.metrics(run_id, split="train", key="loss")] == [1, 2, 3, 4, 4]  # epoch 4 ran twice
    assert [m.step for m in store.metrics(run_id, split="test", key="mrr")] == [1]
    assert same_weights(seen["test"][0], seen["valid"][0])


def test_gradient_accumulation_steps_once_per_group_of_micro_batches(walk):
    """grad_accum=2 with batch b updates like grad_accum=1 with batch 2b (same example order, no dropout; the
    last-position objective, whose loss is a mean over examples of one scored position each)."""
    def trained(**hyper):
        (run_id,) = train_model("sasrec", "walk", seeds=[0], **{**FAST, "epochs": 1, "dropout": 0.0,
                                                               "objective": "last", **hyper})
        return saved_weights(run_id)

    accumulated, big, small = trained(batch_size=16, grad_accum=2), trained(batch_size=32), trained(batch_size=16)
    gap = max((accumulated[k] - big[k]).abs().max().item() for k in big)
    gap_small = max((small[k] - big[k]).abs().max().item() for k in big)
    assert gap < gap_small / 10  # the uneven last batch and float sums leave a small gap (0.003 against 0.22)


def test_noise_and_masking_reach_the_evaluators_and_the_linked_run(walk, monkeypatch):
    seen = scripted_validation(monkeypatch, None)
    train_model("sasrec", "walk", seeds=[0], noise="deletion", mask_seen=True, **{**FAST, "epochs": 1})
    assert sorted(seen["inits"]) == [("test", "deletion", True), ("valid", None, True)]
    (plain,) = train_model("sasrec", "walk", seeds=[0], **{**FAST, "epochs": 1})
    seen["inits"].clear()
    evaluated = evaluate_run(plain, noise="deletion", mask_seen=True)
    assert seen["inits"] == [("test", "deletion", True)]
    assert open_store().get_run(evaluated).config["mask_seen"] is True


def test_the_run_identity_hash_covers_every_config_field(walk):
    config = train_config("sasrec", "walk", 0, noise="deletion", **FAST)
    for key, value in config.items():
        assert config_hash({**config, key: ["changed", value]}) != config_hash(config), key


@pytest.mark.parametrize("args, message", [
    (["train", "transformer", "--dataset", "walk"], "unknown model 'transformer'"),
    (["train", "sasrec", "--dataset", "nowhere"], "no dataset named 'nowhere'"),
    (["train", "sasrec", "--dataset", "walk", "--dropout", "1.5"], "dropout = 1.5 is out of range"),
    (["train", "sasrec", "--dataset", "walk", "--norm", "middle"], "norm must be one of pre, post"),
    (["train", "gru4rec", "--dataset", "walk", "--norm", "post"], "gru4rec does not take norm"),
    (["train", "sasrec", "--dataset", "walk", "--eval", "sampled:x"], "unknown evaluation protocol"),
    (["train", "sasrec", "--dataset", "walk", "--noise", "insertion"], "unknown noise"),
    (["train", "sasrec", "--dataset", "walk", "--metric", "hr@10"], "metric 'hr@10' is not computed under full"),
    (["train", "sasrec", "--dataset", "walk", "--objective", "every"], "objective must be one of all, last"),
    (["train", "bert4rec", "--dataset", "walk", "--objective", "all"], "bert4rec trains by predicting masked items"),
    (["train", "sasrec", "--dataset", "walk", "--lr", "20"], "lr = 20.0 is out of range [1e-08, 10.0]"),
    (["train", "sasrec", "--dataset", "walk", "--epochs", "0"], "epochs = 0 is out of range [1, 100000]"),
    pytest.param(["train", "sasrec", "--dataset", "walk", "--mixed-precision", "fp16"],
                 "fp16 mixed precision needs a GPU", marks=pytest.mark.skipif(torch.cuda.is_available(),
                                                                            reason="a GPU runs fp16")),
])
def test_bad_input_is_one_line_and_exit_2(walk, args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert open_store().list_runs() == []


def test_resuming_a_finished_run_is_refused(walk):
    (run_id,) = train_model("gru4rec", "walk", seeds=[0], hidden=16, epochs=1)
    result = CliRunner().invoke(app, ["train", "sasrec", "--resume", str(run_id)])
    assert result.exit_code == 2 and "is finished" in result.stderr


def test_two_processes_under_torchrun_make_one_run_per_seed(walk, seqrec_home):
    """A real two-process job on CPUs (gloo) over two seeds: one run per seed, each recording its two processes and
    one set of test metrics, with a loss like that of one process taking both processes' batches at once."""
    (single,) = train_model("sasrec", "walk", seeds=[0], **{**FAST, "batch_size": 2 * FAST["batch_size"]})
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "seqrec", "train", "sasrec", "--dataset", "walk", "--seeds", "0,1", "--experiment", "ddp",
               *[f"--{key.replace('_', '-')}={value}" for key, value in FAST.items()]]
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("finished: see `seqrec runs show") == 2  # written out before the processes leave
    store = open_store()
    runs = sorted(store.list_runs(experiment="ddp"), key=lambda run: run.seed)
    assert [(run.seed, run.status, run.config["processes"]) for run in runs] == [(0, "finished", 2), (1, "finished", 2)]
    assert "processes" not in store.get_run(single).config
    for run in runs:
        assert len(store.metrics(run.id, split="test", key="ndcg@10")) == 1
        assert len(store.metrics(run.id, split="train", key="loss")) == FAST["epochs"]
    losses, single_losses = ([metric.value for metric in store.metrics(run_id, split="train", key="loss")]
                             for run_id in (runs[0].id, single))
    assert losses[-1] < losses[0] / 4 and single_losses[-1] < single_losses[0] / 4  # both learned
    assert single_losses[-1] / 2 < losses[-1] < single_losses[-1] * 2


def test_a_process_outside_a_process_group_leaves_with_its_exit_code():
    with pytest.raises(SystemExit) as leaving:
        leave_job(3)
    assert leaving.value.code == 3


def test_a_whole_batch_gathers_the_rows_the_sampler_asked_for_in_order():
    data = BatchIndexedTensors(torch.arange(6) * 10, torch.arange(12).view(6, 2))
    users, histories = data.__getitems__([4, 0, 4, 2])
    assert users.tolist() == [40, 0, 40, 20]
    assert histories.tolist() == [[8, 9], [0, 1], [8, 9], [4, 5]]


def test_a_runs_result_is_decided_by_its_config_not_the_core_count(walk):
    """The same config trained with one thread and with two: the same identity, and metrics equal up to rounding."""
    hyper = {**FAST, "epochs": 4}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        (one,) = train_model("sasrec", "walk", seeds=[0], experiment="one-thread", **hyper)
        torch.set_num_threads(2)
        (two,) = train_model("sasrec", "walk", seeds=[0], experiment="two-threads", **hyper)
    finally:
        torch.set_num_threads(threads)
    store = open_store()
    assert store.get_run(one).config_hash == store.get_run(two).config_hash
    assert store.final_metrics(two)["test"] == pytest.approx(store.final_metrics(one)["test"], abs=1e-4)


def test_the_same_message_for_an_out_of_range_value_from_python_and_the_cli(walk):
    with pytest.raises(SeqrecError) as raised:
        train_model("sasrec", "walk", seeds=[0], lr=20.0)
    result = CliRunner().invoke(app, ["train", "sasrec", "--dataset", "walk", "--lr", "20"])
    assert str(raised.value) in result.stderr
