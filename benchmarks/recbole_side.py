"""The RecBole half of benchmarks/recbole_compare.py; runs inside benchmarks/.recbole-venv (RecBole 1.2.1, numpy<2).

Reads one JSON job from argv[1], trains one model with RecBole's own data pipeline and Trainer, and prints one line
``RESULT <json>`` with per-epoch training seconds, per-evaluation seconds, data counts and test metrics.

Turns: before each timed unit (a training epoch, a validation pass) and before its final test, this side prints
``READY <unit>`` and waits for a ``GO`` line on stdin. recbole_compare.py hands out the turns so that the two sides'
timed units alternate and never overlap, and each pair of units is measured in the same minute of the machine.

Timing: ``Trainer._train_epoch`` (the whole training pass over the data, batching included) and
``Trainer.evaluate`` on validation (full ranking, metric computation included) are wrapped with wall clocks.
Importing RecBole's sequential models switches on torch.autograd anomaly detection (``sine.py``); it is switched
off again before training, or every backward pass would pay for it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole reloads its own pickled checkpoints

import torch  # noqa: E402

from examples_digest import examples_digest  # noqa: E402  (benchmarks/, the script's folder)


def recbole_config(job: dict, workdir: str) -> dict:
    """RecBole settings matching seqrec's protocol: 5-core, leave-one-out by time, full ranking, CE loss."""
    config = {
        "model": job["model"], "dataset": job["dataset"], "data_path": job["data_path"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[5,inf)", "item_inter_num_interval": "[5,inf)",
        "MAX_ITEM_LIST_LENGTH": job["max_len"],
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "loss_type": "CE", "train_neg_sample_args": None,
        "learner": "adam", "learning_rate": job["lr"], "weight_decay": job["weight_decay"],
        "train_batch_size": job["batch_size"], "eval_batch_size": job["eval_batch_size"],
        "epochs": job["epochs"], "eval_step": 1, "stopping_step": 10**9,
        "metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "enable_amp": job["amp"],
        "seed": job["seed"], "reproducibility": True, "use_gpu": False, "gpu_id": "", "worker": 0,
        "checkpoint_dir": os.path.join(workdir, "saved"), "show_progress": False, "log_wandb": False,
        "state": "WARNING", "save_dataset": False, "save_dataloaders": False,
    }
    hidden, dropout = job["hidden"], job["dropout"]
    if job["model"] == "SASRec":
        config.update({"hidden_size": hidden, "inner_size": 4 * hidden, "n_layers": job["layers"],
                       "n_heads": job["heads"], "hidden_dropout_prob": dropout, "attn_dropout_prob": dropout,
                       "hidden_act": "gelu"})
    elif job["model"] == "GRU4Rec":
        config.update({"embedding_size": hidden, "hidden_size": hidden, "num_layers": job["layers"],
                       "dropout_prob": dropout})
    else:
        raise SystemExit(f"recbole_side.py: no settings for model {job['model']!r}")
    return config


def split_digests(dataset, splits: dict) -> dict[str, str]:
    """Each split's ``examples_digest`` in the atomic file's item ids; recbole_compare.py computes seqrec's."""
    tokens = dataset.field2id_token[dataset.iid_field]
    digests = {}
    for split, loader in splits.items():
        feat = loader._dataset.inter_feat
        lists, lengths = feat[dataset.iid_field + "_list"].tolist(), feat["item_length"].tolist()
        digests[split] = examples_digest(([tokens[item] for item in items[:length]], tokens[target])
                                         for items, length, target in zip(lists, lengths,
                                                                          feat[dataset.iid_field].tolist()))
    return digests


def profile_training(trainer, train_data, valid_data, batches: int) -> str:
    """torch.profiler over ``batches`` training steps and one validation pass: the top ops by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    model, optimizer = trainer.model, trainer.optimizer
    model.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for index, interaction in enumerate(train_data):
            if index == batches:
                break
            optimizer.zero_grad()
            model.calculate_loss(interaction).backward()
            optimizer.step()
        trainer.evaluate(valid_data, load_best_model=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


class Turns:
    """Waits for the comparing process's ``GO`` before each timed unit; counts the seconds spent waiting, which the
    fit's wall time leaves out."""

    def __init__(self):
        self.waited = 0.0

    def wait(self, unit: str) -> None:
        start = time.perf_counter()
        print(f"READY {unit}", flush=True)
        if sys.stdin.readline().strip() != "GO":
            raise SystemExit("recbole_side.py: the comparing process went away")
        self.waited += time.perf_counter() - start


def main() -> None:
    job = json.loads(sys.argv[1])
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    workdir = tempfile.mkdtemp(prefix="recbole-bench-")
    os.chdir(workdir)  # RecBole writes log/ and log_tensorboard/ into the working directory

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    config = Config(config_dict=recbole_config(job, workdir))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    torch.autograd.set_detect_anomaly(False)  # importing recbole.model.sequential_recommender.sine turned it on
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    turns = Turns()
    epoch_seconds: list[float] = []
    eval_seconds: list[float] = []
    valid_ndcg: list[float] = []
    train_epoch, evaluate = trainer._train_epoch, trainer.evaluate

    def timed_train_epoch(*args, **kwargs):
        turns.wait("epoch")
        start = time.perf_counter()
        result = train_epoch(*args, **kwargs)
        epoch_seconds.append(time.perf_counter() - start)
        return result

    def timed_evaluate(eval_data, load_best_model=True, *args, **kwargs):
        validation = not load_best_model  # validation passes inside fit(); the final test reloads a checkpoint first
        if validation:
            turns.wait("evaluation")
        start = time.perf_counter()
        result = evaluate(eval_data, load_best_model, *args, **kwargs)
        if validation:
            eval_seconds.append(time.perf_counter() - start)
            valid_ndcg.append(float(result["ndcg@10"]))
        return result

    trainer._train_epoch, trainer.evaluate = timed_train_epoch, timed_evaluate
    start = time.perf_counter()
    best_valid, _ = trainer.fit(train_data, valid_data, verbose=False, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - start - turns.waited
    turns.wait("finish")
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)

    profile_table = None
    if job.get("profile_batches"):
        trainer._train_epoch, trainer.evaluate = train_epoch, evaluate
        profile_table = profile_training(trainer, train_data, valid_data, job["profile_batches"])

    result = {
        "side": "recbole", "model": job["model"], "dataset": job["dataset"], "threads": torch.get_num_threads(),
        "torch": torch.__version__, "anomaly_detection": torch.is_anomaly_enabled(),
        "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1), "interactions": int(dataset.inter_num),
        "train_examples": int(train_data._dataset.inter_num), "valid_examples": int(valid_data._dataset.inter_num),
        "test_examples": int(test_data._dataset.inter_num),
        "examples_digest": split_digests(dataset, {"train": train_data, "valid": valid_data, "test": test_data}),
        "epoch_seconds": epoch_seconds, "eval_seconds": eval_seconds, "fit_seconds": fit_seconds,
        "best_valid_ndcg@10": float(best_valid), "valid_ndcg": valid_ndcg,
        "test": {"ndcg@10": float(test["ndcg@10"]), "recall@10": float(test["recall@10"])},
        "profile": profile_table,
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
