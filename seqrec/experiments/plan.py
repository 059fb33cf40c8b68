"""Planning and running declared experiments: what each run point is, whether the database already has it,
and executing the points in dependency order while continuing past failures."""

from __future__ import annotations

import dataclasses
import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seqrec.data.prepare import prepare_source
from seqrec.data.preprocess import PrepareOptions
from seqrec.errors import SeqrecError
from seqrec.experiments.grid import expand
from seqrec.experiments.schema import ExperimentsFile, ExperimentSpec, load_experiments
from seqrec.recsys.runner import evaluate_run, evaluation_config, train_config, train_model
from seqrec.store import config_hash, open_store

PREPARE_OPTIONS = {f.name for f in dataclasses.fields(PrepareOptions)}


@dataclass
class Point:
    """One run of the plan."""

    experiment: str
    stage: str
    params: dict
    status: str  # to do | done | resume | waiting
    run_id: int | None = None
    execute: Callable[[], object] | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.params.items())


@dataclass
class Plan:
    order: list[str]
    points: dict[str, list[Point]] = field(default_factory=dict)


def dependency_order(spec: ExperimentsFile, name: str, path: Path) -> list[str]:
    """The experiment after everything it names in ``after`` (recursively), each once."""
    order: list[str] = []

    def visit(current: str, trail: tuple[str, ...]) -> None:
        if current in trail:
            raise SeqrecError(f"{path}: experiments.{current}.after: a cycle ({' -> '.join(trail + (current,))})")
        if current in order:
            return
        for other in spec.experiments[current].after:
            visit(other, trail + (current,))
        order.append(current)

    if name not in spec.experiments:
        known = ", ".join(spec.experiments) or "none declared"
        raise SeqrecError(f"{path}: no experiment named {name!r} (declared: {known})")
    visit(name, ())
    return order


def check_parameters(name: str, experiment: ExperimentSpec, accepted: set[str], path: Path) -> None:
    for table in ("params", "grid", "zip"):
        for key in getattr(experiment, table):
            if key not in accepted:
                raise SeqrecError(f"{path}: experiments.{name}.{table}.{key}: the {experiment.stage} stage does not "
                                  f"take {key!r} (it takes {', '.join(sorted(accepted))})")


def train_parameters() -> set[str]:
    from seqrec.recsys.models import RECOMMENDERS as MODELS
    from seqrec.training.config import TrainConfig

    from seqrec.training.options import fields_of

    fields = set(fields_of(TrainConfig, *(config_class for _, config_class in MODELS.values())))
    call = set(inspect.signature(train_config).parameters) - {"hyper", "dataset", "seed"}
    return fields | call


def distill_parameters() -> set[str]:
    from seqrec.llm.configs import DistillConfig, DistillTraining
    from seqrec.training.options import fields_of

    return set(fields_of(DistillConfig, DistillTraining, exclude=("metric",)))


def prepare_points(spec: ExperimentsFile, name: str, experiment: ExperimentSpec) -> list[Point]:
    dataset_name = experiment.dataset
    dataset = spec.datasets[dataset_name]
    inputs = {key: value for key, value in dataset.options.items() if key not in PREPARE_OPTIONS}
    options = {key: value for key, value in dataset.options.items() if key in PREPARE_OPTIONS}
    done = open_store().get_dataset(dataset_name)
    return [Point(name, "prepare", {"dataset": dataset_name}, "done" if done else "to do", done and done.id,
                  lambda: prepare_source(dataset.source, {**inputs, "name": dataset_name}, options))]


def embed_requests(spec: ExperimentsFile, name: str) -> list[dict]:
    """The embed_items() calls an embed experiment stands for (one per grid point; seeds do not apply)."""
    experiment = spec.experiments[name]
    requests = []
    for params in expand(experiment):
        request = {"model": spec.models[experiment.model].alias, "dataset": experiment.dataset,
                   **{key: value for key, value in params.items() if key != "seed"}}
        if request not in requests:
            requests.append(request)
    return requests


def finished_embedding(request: dict) -> int | None:
    """The run that already holds the embeddings for this request, matched on what the request names."""
    for run in open_store().list_runs(kind="embed", status="finished", limit=None):
        if all(run.config.get(key, value) == value for key, value in request.items() if key != "batch_size"):
            return run.id
    return None


def distill_requests(spec: ExperimentsFile, name: str) -> list[dict]:
    """The distill() calls a distill experiment stands for: one per grid point and seed."""
    experiment = spec.experiments[name]
    return [{"teacher": spec.models[experiment.teacher].alias, "student": spec.models[experiment.student].alias,
             "dataset": experiment.dataset, **params} for params in expand(experiment)]


def finished_distillation(request: dict) -> int | None:
    """The finished distill run made with exactly these settings (its recorded options are the request's)."""
    options = {key: value for key, value in request.items() if key not in ("teacher", "student", "dataset", "seed")}
    for run in open_store().list_runs(kind="distill", status="finished", limit=None):
        config = run.config
        if (config.get("teacher"), config.get("student"), config.get("dataset"), config.get("seed"),
                config.get("options")) == (request["teacher"], request["student"], request["dataset"],
                                            request["seed"], dict(sorted(options.items()))):
            return run.id
    return None


def embed_request_run(request: dict, experiment: str) -> int:
    from seqrec.llm.embed import embed_items

    return embed_items(**request).run_id  # an embedding is shared by every experiment that asks for it


def distill_request_run(request: dict, experiment: str) -> int:
    from seqrec.llm.distill import distill

    return distill(**request, experiment=experiment)


# Stages that make item embeddings: how an experiment turns into requests, which finished run answers a request,
# and how a request is run. ``item_emb = "<stage>:<experiment>"`` in a train stage names what they made.
EMBEDDING_SOURCES = {"embed": (embed_requests, finished_embedding, embed_request_run),
                     "distill": (distill_requests, finished_distillation, distill_request_run)}


def embedding_points(spec: ExperimentsFile, name: str) -> list[Point]:
    stage = spec.experiments[name].stage
    requests_of, finished, execute = EMBEDDING_SOURCES[stage]
    points = []
    for request in requests_of(spec, name):
        run_id = finished(request)
        points.append(Point(name, stage, request, "done" if run_id else "to do", run_id,
                            lambda request=request: execute(request, name)))
    return points


def resolve_item_embeddings(spec: ExperimentsFile, value, path: Path):
    """``embed:<experiment>`` / ``distill:<experiment>``: ``run:ID`` of the run that made them, None if none yet."""
    stage, _, source = value.partition(":") if isinstance(value, str) else ("", "", "")
    if stage not in EMBEDDING_SOURCES:
        return value
    if source not in spec.experiments or spec.experiments[source].stage != stage:
        raise SeqrecError(f"{path}: item_emb {value!r}: {source!r} is not a{'n' if stage == 'embed' else ''} "
                          f"{stage} experiment")
    requests_of, finished, _ = EMBEDDING_SOURCES[stage]
    requests = requests_of(spec, source)
    if len(requests) != 1:
        raise SeqrecError(f"{path}: item_emb {value!r}: that experiment makes {len(requests)} embeddings; "
                          f"use a{'n' if stage == 'embed' else ''} {stage} experiment with one seed and no grid")
    run_id = finished(requests[0])
    return None if run_id is None else f"run:{run_id}"


def train_points(spec: ExperimentsFile, name: str, experiment: ExperimentSpec, path: Path) -> list[Point]:
    store = open_store()
    points = []
    for params in expand(experiment):
        kwargs = {key: value for key, value in params.items() if key != "seed"}
        seed = params["seed"]
        status, run_id, resume = "to do", None, None
        if "item_emb" in kwargs and kwargs["item_emb"] != "id":
            kwargs["item_emb"] = resolve_item_embeddings(spec, kwargs["item_emb"], path)
            if kwargs["item_emb"] is None:
                points.append(Point(name, "train", params, "waiting"))
                continue
        if store.get_dataset(experiment.dataset) is not None:
            try:
                identity = config_hash(train_config(dataset=experiment.dataset, seed=seed, **kwargs))
            except SeqrecError as exc:  # this grid point cannot run; the others still can
                points.append(Point(name, "train", params, "failed", error=str(exc)))
                continue
            previous = store.find_run(identity, kind="train", experiment=name,
                                      status=("finished", "interrupted", "running"))
            if previous is not None:
                status = "done" if previous.status == "finished" else "resume"
                run_id = previous.id
                resume = previous.id if status == "resume" else None
        points.append(Point(name, "train", params, status, run_id,
                            lambda kwargs=kwargs, seed=seed, resume=resume: train_model(
                                dataset=experiment.dataset, seeds=[seed], resume=resume, experiment=name, **kwargs)))
    return points


def evaluate_points(name: str, experiment: ExperimentSpec) -> list[Point]:
    """One evaluation per finished training run of the experiment named by ``of``, per grid point."""
    store = open_store()
    points = []
    for params in expand(experiment):
        source = params.get("of")
        overrides = {key: value for key, value in params.items() if key not in ("of", "seed")}
        trained_runs = [run for run in store.list_runs(kind="train", experiment=source, status="finished", limit=None)
                        if run.seed == params["seed"]]
        if not trained_runs:
            points.append(Point(name, "evaluate", params, "waiting"))
            continue
        for trained in trained_runs:
            identity = config_hash(evaluation_config(trained, **overrides))
            previous = store.find_run(identity, kind="evaluate", experiment=name)
            points.append(Point(name, "evaluate", {**params, "run": trained.id}, "done" if previous else "to do",
                                previous and previous.id,
                                lambda trained=trained, overrides=overrides: evaluate_run(
                                    trained.id, experiment=name, **overrides)))
    return points


STAGE_PARAMETERS: dict[str, Callable[[], set[str]]] = {
    "prepare": set,
    "train": train_parameters,
    "evaluate": lambda: {"of", "noise", "eval", "mask_seen"},
    "embed": lambda: {"pooling", "attention", "template", "batch_size", "max_length", "bf16"},
    "distill": distill_parameters,
}


REQUIRED = {"train": ("model",), "evaluate": ("of",)}
NEEDS_DATASET = ("prepare", "train", "embed", "distill")


def points_of(spec: ExperimentsFile, name: str, path: Path) -> list[Point]:
    experiment = spec.experiments[name]
    if experiment.stage not in STAGE_PARAMETERS:
        raise SeqrecError(f"{path}: experiments.{name}.stage: the {experiment.stage} stage cannot run from "
                          "experiments.toml yet (available: " + ", ".join(STAGE_PARAMETERS) + ")")
    check_parameters(name, experiment, STAGE_PARAMETERS[experiment.stage](), path)
    for required in REQUIRED.get(experiment.stage, ()):
        if not any(required in getattr(experiment, table) for table in ("params", "grid", "zip")):
            raise SeqrecError(f"{path}: experiments.{name}.params.{required}: the {experiment.stage} stage needs it")
    if experiment.stage == "embed" and experiment.model is None:
        raise SeqrecError(f"{path}: experiments.{name}.model: the embed stage needs a model (a [models] entry)")
    if experiment.stage == "distill" and (experiment.teacher is None or experiment.student is None):
        raise SeqrecError(f"{path}: experiments.{name}: the distill stage needs a teacher and a student "
                          "([models] entries)")
    if experiment.stage in NEEDS_DATASET and experiment.dataset is None:
        raise SeqrecError(f"{path}: experiments.{name}.dataset: the {experiment.stage} stage needs a dataset")
    if experiment.stage == "prepare":
        return prepare_points(spec, name, experiment)
    if experiment.stage == "train":
        return train_points(spec, name, experiment, path)
    if experiment.stage in EMBEDDING_SOURCES:
        return embedding_points(spec, name)
    return evaluate_points(name, experiment)


def make_plan(name: str, path: Path | str = "experiments.toml") -> tuple[ExperimentsFile, Plan]:
    path = Path(path)
    spec = load_experiments(path)
    order = dependency_order(spec, name, path)
    plan = Plan(order)
    for experiment in order:
        plan.points[experiment] = points_of(spec, experiment, path)
    return spec, plan


# Stages whose work Accelerate shares among the processes of a multi-process job (torchrun); the others (prepare,
# embed) run on the main process alone, so that no two processes write the same dataset or embeddings.
SHARED_STAGES = ("train", "evaluate", "distill")


def run_experiment(name: str, path: Path | str = "experiments.toml", force: bool = False,
                   on_point: Callable[[Point], None] | None = None) -> Plan:
    """Run every point not yet done, experiment by experiment (each re-planned when its turn comes, so that it
    sees what the experiments before it made); failures are recorded on their points and the rest goes on."""
    from seqrec.training.accelerator import process_state

    path = Path(path)
    processes = process_state()
    spec, plan = make_plan(name, path)
    for experiment in plan.order:
        plan.points[experiment] = points_of(spec, experiment, path)
        for point in plan.points[experiment]:
            if point.execute is None or (point.status == "done" and not force):
                continue
            shared = point.stage in SHARED_STAGES
            try:
                result = point.execute() if shared or processes.is_main_process else None
                point.status = "done"
                point.run_id = result[0] if isinstance(result, list) else getattr(result, "id", result)
            except KeyboardInterrupt:
                raise
            except SeqrecError as exc:
                point.status, point.error = "failed", str(exc)
            except Exception as exc:  # one failed grid point must not stop the others; its run records the error
                point.status, point.error = "failed", f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            processes.wait_for_everyone()  # every process plans what comes next from the same database
            if on_point is not None:
                on_point(point)
    return plan
