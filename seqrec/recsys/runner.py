"""`seqrec train` and `seqrec evaluate`: resolve a config, train over seeds, evaluate, record everything."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

import numpy as np
import torch

from seqrec.data.batches import next_item_examples, sequence_examples
from seqrec.data.noise import parse_noise
from seqrec.data.prepare import get_dataset, load_dataset
from seqrec.errors import SeqrecError
from seqrec.recsys.configs import ProfileConfig
from seqrec.recsys.evaluate import Evaluator, parse_protocol
from seqrec.recsys.guide import ProfileGuided, embeddings_artifact, guide_identity, with_profile_guide
from seqrec.recsys.metrics import FULL_METRICS, SAMPLED_METRICS
from seqrec.recsys.models import RECOMMENDERS
from seqrec.store import Artifact, file_digest, open_store
from seqrec.training.accelerator import process_state
from seqrec.training.config import TrainConfig
from seqrec.training.loop import fit
from seqrec.training.options import build, check
from seqrec.training.run import training_run


def metric_names(protocol: str) -> tuple[str, ...]:
    return FULL_METRICS if parse_protocol(protocol) is None else SAMPLED_METRICS


def recommender_class(model_name: str):
    if model_name not in RECOMMENDERS:
        close = difflib.get_close_matches(model_name, RECOMMENDERS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise SeqrecError(f"unknown model {model_name!r} (choose {', '.join(RECOMMENDERS)}){hint}")
    return RECOMMENDERS[model_name]


def resolve_recommender(model_name: str, max_len: int, protocol: str, hyper: dict):
    """(model class, model config, train config) from defaults and the user's values, every value checked."""
    model_class, model_config_class = recommender_class(model_name)
    if "objective" in hyper and model_name == "bert4rec":
        raise SeqrecError("bert4rec trains by predicting masked items; --objective applies to sasrec, gru4rec "
                          "and caser")
    check(hyper, [model_config_class, TrainConfig, ProfileConfig], model_name)
    model_config = build(model_config_class, {**hyper, "max_len": max_len})
    train_config = build(TrainConfig, hyper)
    if getattr(model_config, "heads", None) and model_config.hidden % model_config.heads:
        raise SeqrecError(f"hidden ({model_config.hidden}) must be divisible by heads ({model_config.heads})")
    if train_config.mixed_precision == "fp16" and process_state().device.type == "cpu":
        # Accelerate would quietly train in float32 and the run would still say fp16
        raise SeqrecError("fp16 mixed precision needs a GPU; on CPUs use bf16 (fast with AVX512-BF16 or AMX)")
    if train_config.metric not in metric_names(protocol):
        raise SeqrecError(f"metric {train_config.metric!r} is not computed under {protocol}; choose one of "
                          f"{', '.join(metric_names(protocol))}")
    return model_class, model_config, train_config


def training_examples(data, model_config):
    """The training set the model's objective reads: every prefix (last) or every sequence once (all)."""
    if model_config.objective == "all":
        return sequence_examples(data, data.max_len)
    return next_item_examples(data, data.max_len)


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
    # an artifact's digest was recorded when it was logged; a plain file is hashed
    digest = artifact.sha256 if artifact is not None else file_digest(path)[0]
    identity = {"item_emb": label, "item_emb_sha256": digest}
    if artifact is not None and artifact.meta.get("baseline"):  # a distilled student's: its base model's label
        identity["item_emb_baseline"] = artifact.meta["baseline"]
    return matrix, artifact, identity


def train_config(model: str, dataset: str, seed: int, item_emb: str | None = None, eval: str = "full",
                 noise: str | None = None, mask_seen: bool = False, **hyper) -> dict:
    """The fully resolved config of one training run: its identity (hashed) and everything needed to rerun it.

    Hyper-parameters appear flat with their defaults filled in, so runs can be grouped and compared by any of them.
    """
    parse_protocol(eval)
    parse_noise(noise)
    dataset_row = get_dataset(dataset)
    max_len, num_items = dataset_row.options["max_len"], dataset_row.stats["items"]
    _, model_config, trainer_config = resolve_recommender(model, max_len, eval, hyper)
    guide = guide_identity(model, build(ProfileConfig, hyper), model_config, trainer_config, dataset_row.fingerprint,
                           dataset_row.stats["users"])
    return {"model": model, "dataset": dataset, "dataset_fingerprint": dataset_row.fingerprint, "seed": seed,
            "eval": eval, "noise": noise, "mask_seen": mask_seen, "num_items": num_items,
            "item_emb_source": item_emb, **item_embeddings(item_emb, num_items)[2],
            "hyper": dict(sorted(hyper.items())),
            **dataclasses.asdict(model_config), **dataclasses.asdict(trainer_config), **guide}


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
    model_class, model_config, trainer_config = resolve_recommender(config["model"], data.max_len, config["eval"],
                                                              config["hyper"])
    frozen, artifact, _ = item_embeddings(config["item_emb_source"], data.num_items)
    seed = config["seed"]
    profile_config = build(ProfileConfig, config["hyper"])
    inputs = [artifact] if artifact else []
    if profile_config.profiles is not None:
        inputs.append(embeddings_artifact(profile_config.profiles))
    with training_run("train", config, seed=seed, dataset=data.name, experiment=experiment,
                      inputs=inputs, resume=resume, grad_accum=trainer_config.grad_accum,
                      mixed_precision=trainer_config.mixed_precision) as job:
        evaluators = {split: Evaluator(data, split, protocol=config["eval"], seed=seed,
                                       mask_seen_items=config["mask_seen"],
                                       noise=config["noise"] if split == "test" else None,
                                       data_folder=Path(dataset_row.path)) for split in ("valid", "test")}
        model = model_class(data.num_items, model_config, frozen, num_users=int(data.train["user"].max()))
        trained, profile_counts = with_profile_guide(model, profile_config, data, dataset_row.fingerprint, seed)
        if profile_counts:
            job.accelerator.log(profile_counts, log_kwargs={"seqrec": {"split": "profiles"}})
        last_epoch: dict = {}  # the weights of the latest validation: the last epoch trained

        def validate(model, accelerator):
            if profile_config.report_last_epoch:
                last_epoch.update({key: value.detach().clone()
                                   for key, value in accelerator.unwrap_model(model).state_dict().items()})
            return evaluators["valid"].evaluate(model, accelerator)

        trained, state = fit(trained, training_examples(data, model_config), validate, trainer_config,
                             job.accelerator, job.dir, seed, resume=resume is not None)
        model = trained.recommender if isinstance(trained, ProfileGuided) else trained
        if last_epoch:
            best = {key: value.clone() for key, value in trained.state_dict().items()}
            trained.load_state_dict(last_epoch)
            job.accelerator.log(evaluators["test"].evaluate(model, job.accelerator), step=state.epoch,
                                log_kwargs={"seqrec": {"split": "test_last"}})
            trained.load_state_dict(best)
        metrics = evaluators["test"].evaluate(model, job.accelerator)
        job.accelerator.log(metrics, step=state.best_epoch, log_kwargs={"seqrec": {"split": "test"}})
        weights = job.dir / "best.pt"
        if model is not trained:  # the recommender alone: what inference and `seqrec evaluate` load
            weights = job.dir / "recommender.pt"
            torch.save(model.state_dict(), weights)
        job.log_artifact(weights, kind="model", meta={"model": config["model"]})
    return job.id


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


def trained_recommender(config: dict, weights: Path, data):
    """The recommender a training run's config describes, with its saved ``weights`` loaded, in eval mode."""
    hyper = {key: value for key, value in config["hyper"].items() if key != "metric"}
    model_class, model_config, _ = resolve_recommender(config["model"], data.max_len, config["eval"], hyper)
    frozen = item_embeddings(config.get("item_emb_source"), data.num_items)[0]
    model = model_class(data.num_items, model_config, frozen, num_users=int(data.train["user"].max()))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


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
    with training_run("evaluate", config, seed=trained.seed, dataset=trained.dataset,
                      experiment=experiment or trained.experiment, inputs=[models[-1]],
                      mixed_precision=config["mixed_precision"]) as job:
        model = job.accelerator.prepare(trained_recommender(config, Path(models[-1].path), data))
        evaluator = Evaluator(data, "test", protocol=config["eval"], noise=config["noise"], seed=trained.seed,
                              mask_seen_items=config["mask_seen"], data_folder=Path(get_dataset(trained.dataset).path))
        job.accelerator.log(evaluator.evaluate(model, job.accelerator), log_kwargs={"seqrec": {"split": "test"}})
    return job.id
