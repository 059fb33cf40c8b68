"""Planning and running declared experiments: each experiment's stage turns it into requests, each request's
fully resolved config is hashed and looked up in the store, and what is not there yet runs, in dependency order,
past failures.

Any number of workers (``seqrec run`` processes on one machine or many, sharing the database) can run one study:
each claims one open point at a time from the database, beats while it works on it, and takes over a point whose
worker stopped beating; an experiment's points are all finished before a worker goes on to the next experiment,
so every stage finds the runs it depends on.

Everything that can be checked without the store (stage fields, parameter names, ranges, references) is checked
for every experiment before anything runs. An experiment is planned once, when its turn comes, so that it sees
what the experiments before it made.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from seqrec.errors import SeqrecError, storage_failure
from seqrec.store import config_hash, open_store
from seqrec.store.heartbeat import beating
from seqrec.training.options import check_value
from seqrec.experiments.schema import load_experiments
from seqrec.experiments.stages import EXPERIMENT_FIELDS, Plan, Point, Stage, is_reference, stage_named

TABLES = ("params", "grid", "zip")


def dependency_order(spec, name: str, path: Path) -> list[str]:
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


# checks before anything runs ------------------------------------------------------------------------------------
def declared_values(experiment, key: str) -> list:
    """Every value an experiment gives ``key`` in its params, grid and zip."""
    values = [experiment.params[key]] if key in experiment.params else []
    return values + experiment.grid.get(key, []) + experiment.zip.get(key, [])


def check_fields(plan: Plan, name: str, stage: Stage) -> None:
    experiment = plan.spec.experiments[name]
    for field_name in stage.needs:
        if getattr(experiment, field_name) is None:
            what = " (a [models] entry or \"<stage>:<experiment>\")" if field_name != "dataset" else ""
            raise SeqrecError(f"{plan.where(name, field_name)}: the {stage.name} stage needs a {field_name}{what}")
    if stage.calls_llm and (experiment.model is None) == (experiment.endpoint is None):
        raise SeqrecError(f"{plan.path}: experiments.{name}: the {stage.name} stage calls an LLM: name either a model "
                          "(a [models] entry or \"<stage>:<experiment>\") or an endpoint (an [endpoints] entry)")
    accepted = set(stage.needs) | set(stage.uses) | ({"model", "endpoint"} if stage.calls_llm else set())
    for field_name in EXPERIMENT_FIELDS:
        if getattr(experiment, field_name) is not None and field_name not in accepted:
            raise SeqrecError(f"{plan.where(name, field_name)}: the {stage.name} stage does not use a {field_name}")


def check_parameters(plan: Plan, name: str, stage: Stage) -> None:
    experiment = plan.spec.experiments[name]
    accepted = stage.parameters()
    for table in TABLES:
        for key in getattr(experiment, table):
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise SeqrecError(f"{plan.path}: experiments.{name}.{table}.{key}: the {stage.name} stage does not "
                                  f"take {key!r} (it takes {', '.join(sorted(accepted))}){hint}")
    for key in stage.required:
        if not declared_values(experiment, key):
            raise SeqrecError(f"{plan.path}: experiments.{name}.params.{key}: the {stage.name} stage needs it")


def check_values(plan: Plan, name: str, stage: Stage) -> None:
    """Values against the stage's declared choices and ranges; combinations are checked per point when planned."""
    experiment = plan.spec.experiments[name]
    declared, choices = stage.declared(), stage.choices()
    for table in TABLES:
        for key, given in getattr(experiment, table).items():
            for value in [given] if table == "params" else given:
                where = f"{plan.path}: experiments.{name}.{table}.{key}"
                if key in choices and value not in choices[key]:
                    raise SeqrecError(f"{where}: {value!r} is not one of {', '.join(map(str, choices[key]))}")
                if key in declared:
                    try:
                        check_value(key, value, declared[key])
                    except SeqrecError as exc:
                        raise SeqrecError(f"{where}: {exc}") from None


def check_references(plan: Plan, name: str, stage: Stage) -> None:
    """Every "<stage>:<experiment>" names a single-point experiment of a stage that makes what is needed there, and
    one that runs before this one."""
    experiment = plan.spec.experiments[name]
    for key, needed in stage.references.items():
        from_field = key in type(experiment).model_fields
        values = [getattr(experiment, key)] if from_field else declared_values(experiment, key)
        for value in values:
            if not is_reference(value) or (from_field and value in plan.spec.models):
                continue
            where = f"{plan.where(name, key)}: {value!r}"
            stage_name, _, source_name = value.partition(":")
            source_stage = stage_named(stage_name, where)
            if needed not in source_stage.makes:
                raise SeqrecError(f"{where}: {stage_name} runs make no {needed}")
            source = plan.spec.experiments.get(source_name)
            if source is None or source.stage != stage_name:
                raise SeqrecError(f"{where}: {source_name!r} is not an experiment with stage = {stage_name!r}")
            if source_name not in plan.order[:plan.order.index(name)]:
                raise SeqrecError(f"{where}: {source_name!r} must run first; add it to experiments.{name}.after")
            if source.grid or source.zip or len(source.seeds) > 1:
                raise SeqrecError(f"{where}: that experiment makes more than one result; name one with a single seed "
                                  "and no grid or zip")


def check_plan(plan: Plan) -> None:
    for name in plan.order:
        experiment = plan.spec.experiments[name]
        stage = stage_named(experiment.stage, f"{plan.path}: experiments.{name}.stage")
        check_fields(plan, name, stage)
        check_parameters(plan, name, stage)
        check_values(plan, name, stage)
        check_references(plan, name, stage)
        stage.check(plan, name)


def load_plan(name: str, path: Path | str = "experiments.toml") -> Plan:
    """The experiment and those it runs after, checked, with nothing planned yet."""
    path = Path(path)
    spec = load_experiments(path)
    plan = Plan(spec, path, dependency_order(spec, name, path))
    check_plan(plan)
    return plan


# planning -------------------------------------------------------------------------------------------------------
def point_key(stage: str, experiment: str, arguments: dict) -> str:
    """What names a point between the workers of a study: the same on every worker that reads the same file."""
    return f"{stage}:{experiment}:{config_hash(arguments)}"


def plan_experiment(plan: Plan, name: str) -> list[Point]:
    """The experiment's points: each request's config resolved, hashed and looked up in the store."""
    stage = stage_named(plan.spec.experiments[name].stage, name)
    points = []
    for request in stage.requests(plan, name):
        if request.waiting_for is not None:
            points.append(Point(name, stage.name, request.params, "waiting"))
            continue
        key = point_key(stage.name, name, request.arguments)

        def execute(arguments=request.arguments, resume=None):
            return stage.execute(arguments, name, resume)

        if not stage.resolvable(request.arguments):
            points.append(Point(name, stage.name, request.params, "to do", execute=execute, key=key))
            continue
        try:
            config = stage.resolve(request.arguments)
        except SeqrecError as exc:  # this point cannot run; the others still can
            points.append(Point(name, stage.name, request.params, "failed", error=str(exc)))
            continue
        points.append(looked_up(Point(name, stage.name, request.params, "to do", execute=execute, key=key,
                                      config=config), stage))
    plan.points[name] = points
    return points


def looked_up(point: Point, stage: Stage) -> Point:
    """The point as the store has it now: to do, done (a finished run of its config) or to resume (an
    interrupted one, for a stage that can resume)."""
    found = stage.lookup(point.config, point.experiment)
    status = "to do" if found is None else "done" if found.status == "finished" else "resume"
    return dataclasses.replace(point, status=status, run_id=None if found is None else found.id)


def make_plan(name: str, path: Path | str = "experiments.toml") -> Plan:
    """Every experiment planned against the store as it is now (``seqrec run --dry-run``)."""
    plan = load_plan(name, path)
    for experiment in plan.order:
        plan_experiment(plan, experiment)
    return plan


# running --------------------------------------------------------------------------------------------------------
def run_point(point: Point, every_process: bool, processes) -> None:
    """Execute a point and record how it ended; every process continues from the main process's outcome."""
    from accelerate.utils import broadcast_object_list

    try:
        resume = point.run_id if point.status == "resume" else None
        run_id = point.execute(resume=resume) if every_process or processes.is_main_process else None
        outcome = ("done", run_id, None)
    except KeyboardInterrupt:
        raise
    except SeqrecError as exc:
        outcome = ("failed", None, str(exc))
    except Exception as exc:  # one failed grid point must not stop the others; its run records the error
        if storage_failure(exc):  # ... but a full or read-only disk would fail every one of them: stop the study
            raise
        outcome = ("failed", None, f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    point.status, point.run_id, point.error = broadcast_object_list([outcome])[0]


@contextmanager
def holding(store, key: str, worker: tuple[str, int], main: bool):
    """While the block runs, the main process beats for its claim on the point; the claim goes when it ends,
    interrupted included, so that another worker can take the point up."""
    if not main:
        yield
        return
    try:
        with beating(lambda: store.beat_claim(key, *worker), store.settings.heartbeat_s):
            yield
    finally:
        store.release_claim(key, *worker)


def work_through(plan: Plan, experiment: str, force: bool, processes,
                 on_point: Callable[[Point], None] | None, on_plan: Callable[[Plan, str], None] | None) -> None:
    """Claim and run the experiment's open points one at a time until none is left to this worker, waiting while
    other workers hold some. The experiment is planned once, and again only after waiting for other workers; a
    claimed point is looked up once more first, so that one another worker finished meanwhile is not run twice
    and one whose worker stopped is resumed. This worker tries each point once; the plan keeps how its tries
    ended."""
    from accelerate.utils import broadcast_object_list

    store = open_store()
    main = processes.is_main_process
    worker = (socket.gethostname(), os.getpid())
    stage = stage_named(plan.spec.experiments[experiment].stage, experiment)
    tried: dict[str, Point] = {}
    if main:
        store.interrupt_lost_runs()
    points = plan_experiment(plan, experiment)
    if on_plan is not None:
        on_plan(plan, experiment)
    while True:
        open_points = {point.key: point for point in points if point.execute is not None
                       and (point.status != "done" or force) and point.key not in tried}
        if not open_points:
            break
        labels = {key: point.label for key, point in open_points.items()}
        key = store.claim_next(experiment, labels, *worker) if main else None
        key = broadcast_object_list([key])[0]
        if key is None:  # live workers hold every open point: wait for them, then see what they left
            time.sleep(store.settings.heartbeat_s)
            if main:
                store.interrupt_lost_runs()
            points = plan_experiment(plan, experiment)
            continue
        with holding(store, key, worker, main):
            point = open_points[key]
            if main:
                store.interrupt_lost_runs()  # (a run of a worker that stopped beating is resumed, not left running)
            if point.config is not None:  # (a point resolved only when it runs has nothing to look up yet)
                point = looked_up(point, stage)
            tried[key] = point
            if point.status == "done" and not force:
                continue  # another worker finished it between the planning and the claim
            run_point(point, stage.every_process, processes)
        if on_point is not None:
            on_point(point)
    plan.points[experiment] = [tried.get(point.key, point) for point in points]


def run_experiment(name: str, path: Path | str = "experiments.toml", force: bool = False,
                   on_point: Callable[[Point], None] | None = None,
                   on_plan: Callable[[Plan, str], None] | None = None) -> Plan:
    """Run every point not yet done, experiment by experiment, each planned when its turn comes; failures are
    recorded on their points and the rest goes on. Other workers may run the same study at the same time.
    ``on_plan`` sees each experiment's points before they run, ``on_point`` each point after it ran."""
    from seqrec.training.accelerator import process_state

    processes = process_state()
    plan = load_plan(name, path)
    for experiment in plan.order:
        work_through(plan, experiment, force, processes, on_point, on_plan)
    return plan
