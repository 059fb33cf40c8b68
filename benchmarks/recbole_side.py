"""The RecBole half of benchmarks/time_to_model.py; runs inside benchmarks/.recbole-venv (RecBole 1.2.1, numpy<2).

Reads one JSON job from argv[1], trains SASRec with RecBole's own defaults (hidden 64, dropout 0.5, batch 2048,
Adam lr 1e-3, early stopping after 10 validations without a better NDCG@10) on the given atomic files under the
shared protocol (5-core, leave-one-out by time, histories of ``max_len``, full ranking without masking), and
prints one line ``RESULT <json>``: wall seconds from start to the final model, epochs, best epoch, test metrics.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole reloads its own pickled checkpoints


def main() -> None:
    job = json.loads(sys.argv[1])
    start = time.perf_counter()
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.autograd.set_detect_anomaly(False)  # importing RecBole's sequential models switches it on
    torch.set_num_threads(job["threads"])
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)  # RecBole writes its log_tensorboard/ folder into the working directory
        config = Config(model="SASRec", dataset=job["dataset"], config_dict={
            "data_path": job["data_path"], "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
            "TIME_FIELD": "timestamp", "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "user_inter_num_interval": "[5,inf)", "item_inter_num_interval": "[5,inf)",
            "MAX_ITEM_LIST_LENGTH": job["max_len"],
            "train_neg_sample_args": None,  # RecBole refuses negative sampling with its default CE loss
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
            "metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
            "seed": job["seed"], "reproducibility": True, "use_gpu": False, "gpu_id": "", "worker": 0,
            "checkpoint_dir": os.path.join(workdir, "saved"), "show_progress": False, "log_wandb": False,
            "state": "WARNING", "save_dataset": False, "save_dataloaders": False})
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        model = SASRec(config, train.dataset)
        trainer = Trainer(config, model)
        epochs = []
        train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

        def counted_train_epoch(*args, **kwargs):
            epochs.append(1)
            return train_epoch(*args, **kwargs)

        def reported_valid_epoch(*args, **kwargs):
            score, result = valid_epoch(*args, **kwargs)
            # RecBole runs silent at state WARNING; one line per validation shows a long run's progress
            print(f"epoch {len(epochs)}  valid NDCG@10 {score:.4f}  {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
            return score, result

        trainer._train_epoch, trainer._valid_epoch = counted_train_epoch, reported_valid_epoch
        best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
        metrics = trainer.evaluate(test, load_best_model=True, show_progress=False)
        seconds = time.perf_counter() - start
    result = {"seconds": seconds, "epochs": len(epochs), "best_valid_ndcg@10": float(best_valid),
              "test": {key.lower(): float(value) for key, value in metrics.items()}}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
