"""`seqrec train` and `seqrec evaluate`: resolve a config, train over seeds, evaluate, record everything."""

from __future__ import annotations

import dataclasses
import difflib
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import broadcast_object_list

from seqrec.data.noise import parse_noise
from seqrec.data.prepare import get_dataset, load_dataset
from seqrec.data.batches import next_item_examples
from seqrec.errors import SeqrecError
from seqrec.recsys.evaluate import Evaluator, parse_protocol
from seqrec.recsys.metrics import FULL_METRICS, SAMPLED_METRICS
from seqrec.recsys.models import MODELS
from seqrec.recsys.train import TrainConfig, fit, leave_together, make_accelerator, process_state
from seqrec.settings import get_settings
from seqrec.store import Artifact, file_digest, open_store

RANGES = {  # hyper-parameter -> (lowest allowed, highest allowed)
    "hidden": (1, 8192), "layers": (1, 48), "heads": (1, 64), "dropout": (0.0, 0.99), "epochs": (1, 100_000),
    "batch_size": (1, 1 << 20), "lr": (1e-8, 10.0), "weight_decay": (0.0, 10.0), "eval_every": (1, 100_000),
    "patience": (1, 100_000), "grad_accum": (1, 4096), "mask_prob": (0.01, 0.99),
    "horizontal_filters": (1, 4096), "vertical_filters": (1, 4096), "cpu_shards": (0, 256),
}
CHOICES = {"loss": ("ce", "bce"), "norm": ("pre", "post"), "mixed_precision": ("no", "bf16", "fp16")}


def metric_names(protocol: str) -> tuple[str, ...]:
    return FULL_METRICS if parse_protocol(protocol) is None else SAMPLED_METRICS


def resolve_hyper(model_name: str, max_len: int, protocol: str, hyper: dict):
    """(model config, train config) from defaults and the user's values, every value checked."""
    if model_name not in MODELS:
        close = difflib.get_close_matches(model_name, MODELS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise SeqrecError(f"unknown model {model_name!r} (choose {', '.join(MODELS)}){hint}")
    model_class, model_config_class = MODELS[model_name]
    model_fields = {f.name for f in dataclasses.fields(model_config_class)} - {"max_len"}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(hyper) - model_fields - train_fields)
    if unknown:
        raise SeqrecError(f"{model_name} does not take {', '.join(unknown)}; it takes "
                          f"{', '.join(sorted(model_fields | train_fields))}")
    for key, value in hyper.items():
        if key in RANGES and not RANGES[key][0] <= value <= RANGES[key][1]:
            raise SeqrecError(f"{key} = {value} is out of range [{RANGES[key][0]}, {RANGES[key][1]}]")
        if key in CHOICES and value not in CHOICES[key]:
            raise SeqrecError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    model_config = model_config_class(max_len=max_len, **{k: v for k, v in hyper.items() if k in model_fields})
    train_config = TrainConfig(**{k: v for k, v in hyper.items() if k in train_fields})
    if getattr(model_config, "heads", 1) and model_config.hidden % getattr(model_config, "heads", 1):
        raise SeqrecError(f"hidden ({model_config.hidden}) must be divisible by heads ({model_config.heads})")
    if train_config.cpu_shards > 1 and not model_class.loss_is_example_mean:
        raise SeqrecError(f"{model_name}'s loss is not a mean over examples, so its batches cannot be split across "
                          "cores: cpu_shards must be 0 (automatic) or 1")
    if train_config.mixed_precision == "fp16" and process_state().device.type == "cpu":
        # Accelerate would quietly train in float32 and the run would still say fp16
        raise SeqrecError("fp16 mixed precision needs a GPU; on CPUs use bf16 (fast with AVX512-BF16 or AMX)")
    if train_config.metric not in metric_names(protocol):
        raise SeqrecError(f"metric {train_config.metric!r} is not computed under {protocol}; choose one of "
                          f"{', '.join(metric_names(protocol))}")
    return model_class, model_config, train_config


def item_embeddings(spec: str | None, num_items: int) -> tuple[np.ndarray | None, Artifact | None, dict]:
    """Frozen item embeddings from a .npy file, ``artifact:ID`` or ``run:ID`` (its item-embeddings artifact)."""
    if spec in (None, "", "id"):
        return None, None, {"item_emb": None}
    store = open_store()
    artifact = None
    if spec.startswith("artifact:"):
        artifact = store.get_artifact(int(spec.split(":", 1)[1]))
        path = Path(artifact.path)
    elif spec.startswith("run:"):
        found = store.artifacts(int(spec.split(":", 1)[1]), kind="item-embeddings")
        if not found:
            raise SeqrecError(f"run {spec.split(':', 1)[1]} has no item-embeddings artifact")
        artifact, path = found[-1], Path(found[-1].path)
    else:
        path = Path(spec)
    if not path.exists():
        raise SeqrecError(f"item embeddings {path} do not exist")
    try:
        matrix = np.load(path)
    except ValueError as exc:
        raise SeqrecError(f"{path} is not a .npy matrix: {exc}") from None
    if matrix.ndim != 2 or matrix.shape[0] != num_items + 1:
        raise SeqrecError(f"item embeddings {path} have shape {matrix.shape}, but the dataset needs "
                          f"{num_items + 1} rows (its {num_items} items plus padding row 0)")
    label = artifact.meta.get("label", spec) if artifact is not None else spec
    identity = {"item_emb": label, "item_emb_sha256": file_digest(path)[0]}
    if artifact is not None and artifact.meta.get("baseline"):  # a distilled student's: its base model's label
        identity["item_emb_baseline"] = artifact.meta["baseline"]
    return matrix, artifact, identity


def main_process_run(kind: str, config: dict, **run_options):
    """The run is opened by the main process only; every process learns its id and folder.

    A job of several processes records how many in its config: each process takes a batch of ``batch_size``
    (Accelerate's convention), so the update sees that many times more examples than a one-process run. The count
    is this job's own (an evaluation copies its training run's config).
    """
    state = process_state()
    config = {key: value for key, value in config.items() if key != "processes"}
    if state.num_processes > 1:
        config["processes"] = state.num_processes
    context = open_store().start_run(kind, config, **run_options) if state.is_main_process else nullcontext(None)
    return state, context


def shared_run_dir(run) -> Path:
    run_id = broadcast_object_list([run.id if run is not None else None])[0]
    return get_settings().runs_dir / str(run_id)


def train_config(model: str, dataset: str, seed: int, item_emb: str | None = None, eval: str = "full",
                 noise: str | None = None, mask_seen: bool = False, **hyper) -> dict:
    """The fully resolved config of one training run: its identity (hashed) and everything needed to rerun it.

    Hyper-parameters appear flat with their defaults filled in, so runs can be grouped and compared by any of them.
    """
    parse_protocol(eval)
    parse_noise(noise)
    dataset_row = get_dataset(dataset)
    max_len, num_items = dataset_row.options["max_len"], dataset_row.stats["items"]
    _, model_config, trainer_config = resolve_hyper(model, max_len, eval, hyper)
    return {"model": model, "dataset": dataset, "dataset_fingerprint": dataset_row.fingerprint, "seed": seed,
            "eval": eval, "noise": noise, "mask_seen": mask_seen, "num_items": num_items,
            "item_emb_source": item_emb, **item_embeddings(item_emb, num_items)[2],
            "hyper": dict(sorted(hyper.items())),
            **dataclasses.asdict(model_config), **dataclasses.asdict(trainer_config)}


def train_model(model: str, dataset: str | None, seeds: list[int] = (0,), item_emb: str | None = None,
                eval: str = "full", noise: str | None = None, mask_seen: bool = False, resume: int | None = None,
                experiment: str | None = None, **hyper) -> list[int]:
    """Train ``model`` on ``dataset`` once per seed; returns the run ids (on the main process)."""
    if resume is not None:
        previous = open_store().resumable_run(resume, "train")
        config = previous.config
        return [train_one(config, previous.experiment, resume)]
    configs = [train_config(model, dataset, seed, item_emb, eval, noise, mask_seen, **hyper) for seed in seeds]
    return [train_one(config, experiment, None) for config in configs]


def train_one(config: dict, experiment: str | None, resume: int | None) -> int | None:
    dataset_row = get_dataset(config["dataset"])
    data = load_dataset(config["dataset"])
    model_class, model_config, trainer_config = resolve_hyper(config["model"], data.max_len, config["eval"],
                                                              config["hyper"])
    frozen, artifact, _ = item_embeddings(config["item_emb_source"], data.num_items)
    seed = config["seed"]
    _, context = main_process_run("train", config, experiment=experiment, seed=seed, dataset=data.name,
                                  inputs=[artifact] if artifact and resume is None else [], resume=resume)
    with context as run:
        run_dir = shared_run_dir(run)
        run_dir.mkdir(parents=True, exist_ok=True)
        accelerator = make_accelerator(trainer_config, run)
        evaluators = {split: Evaluator(data, split, protocol=config["eval"], seed=seed,
                                       mask_seen_items=config["mask_seen"],
                                       noise=config["noise"] if split == "test" else None,
                                       data_folder=Path(dataset_row.path)) for split in ("valid", "test")}
        torch.manual_seed(seed)
        model = model_class(data.num_items, model_config, frozen, num_users=int(data.train["user"].max()))
        model, state = fit(model, next_item_examples(data, data.max_len), evaluators["valid"].evaluate,
                           trainer_config, accelerator, run_dir, seed, resume=resume is not None)
        metrics = evaluators["test"].evaluate(model, accelerator)
        accelerator.log(metrics, step=state.best_epoch, log_kwargs={"seqrec": {"split": "test"}})
        leave_together(accelerator)
        if run is not None:
            run.log_artifact(run_dir / "best.pt", kind="model", meta={"model": config["model"]})
            return run.id
    return None


def evaluation_config(trained, noise: str | None = None, eval: str | None = None,
                      mask_seen: bool | None = None) -> dict:
    """The config of re-evaluating a finished training run: its own config with the overrides applied."""
    if trained.kind != "train" or trained.status != "finished":
        raise SeqrecError(f"run {trained.id} is a {trained.status} {trained.kind} run; evaluate needs a finished "
                          "training run")
    config = {**trained.config, "source_run": trained.id, "eval": eval or trained.config["eval"],
              "noise": noise if noise is not None else trained.config.get("noise"),
              "mask_seen": trained.config.get("mask_seen", False) if mask_seen is None else mask_seen}
    parse_protocol(config["eval"])
    parse_noise(config["noise"])
    return config


def evaluate_run(run_id: int, noise: str | None = None, eval: str | None = None, mask_seen: bool | None = None,
                 experiment: str | None = None) -> int:
    """Re-evaluate a trained run's best model on the test split into a new run linked to it."""
    store = open_store()
    trained = store.get_run(run_id)
    config = evaluation_config(trained, noise, eval, mask_seen)
    models = store.artifacts(run_id, kind="model")
    if not models or not Path(models[-1].path).exists():
        raise SeqrecError(f"run {run_id} has no saved model to evaluate")
    data = load_dataset(trained.dataset)
    hyper = {key: value for key, value in config["hyper"].items() if key != "metric"}
    model_class, model_config, trainer_config = resolve_hyper(config["model"], data.max_len, config["eval"], hyper)
    frozen = item_embeddings(config.get("item_emb_source"), data.num_items)[0]
    _, context = main_process_run("evaluate", config, experiment=experiment or trained.experiment, seed=trained.seed,
                                  dataset=trained.dataset, inputs=[models[-1]])
    with context as run:
        accelerator = make_accelerator(trainer_config, run)
        model = model_class(data.num_items, model_config, frozen, num_users=int(data.train["user"].max()))
        model.load_state_dict(torch.load(models[-1].path, map_location="cpu", weights_only=True))
        model = accelerator.prepare(model)
        evaluator = Evaluator(data, "test", protocol=config["eval"], noise=config["noise"], seed=trained.seed,
                              mask_seen_items=config["mask_seen"], data_folder=Path(get_dataset(trained.dataset).path))
        accelerator.log(evaluator.evaluate(model, accelerator), log_kwargs={"seqrec": {"split": "test"}})
        leave_together(accelerator)
        return run.id if run is not None else None
