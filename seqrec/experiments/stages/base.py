"""The stage contract, the registry of stages, and the plan a stage is planned in.

A stage is what an experiment of experiments.toml runs. Each module of this package declares one with
``@register``; experiments.toml and the planner know stages only through this contract, so a new stage is a new
module.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from seqrec.errors import SeqrecError
from seqrec.llm.backends.options import LLMOptions
from seqrec.llm.registry import is_available
from seqrec.store import config_hash, open_store

if TYPE_CHECKING:
    from seqrec.experiments.schema import ExperimentsFile

STAGES: dict[str, Stage] = {}
EXPERIMENT_FIELDS = ("dataset", "model", "teacher", "student", "endpoint", "prompt")


def register(stage_class: type[Stage]) -> type[Stage]:
    """Class decorator: experiments.toml accepts the stage under its ``name`` and the planner runs it."""
    known = STAGES.get(stage_class.name)
    if known is not None and type(known) is not stage_class:
        raise ValueError(f"two stages are named {stage_class.name!r}: {type(known)} and {stage_class}")
    STAGES[stage_class.name] = stage_class()
    return stage_class


def stage_names() -> list[str]:
    return sorted(STAGES)


def stage_named(name: str, where: str) -> Stage:
    """The registered stage, or an error naming ``where`` it was asked for, the known stages and a close one."""
    if name in STAGES:
        return STAGES[name]
    close = difflib.get_close_matches(name, STAGES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SeqrecError(f"{where}: unknown stage {name!r} (known: {', '.join(stage_names())}){hint}")


def is_reference(value) -> bool:
    """``"<stage>:<experiment>"``: the result of another experiment (``embed:minilm``, ``llm2rec:teacher-ic``)."""
    return isinstance(value, str) and value.partition(":")[0] in STAGES and bool(value.partition(":")[2])


class Found(NamedTuple):
    """What the store already holds for a request: a run (or a dataset) and its status."""

    id: int
    status: str


@dataclass
class Request:
    """One run an experiment asks for."""

    params: dict  # the declared point (grid values, seed), as the plan shows it
    arguments: dict = field(default_factory=dict)  # what the stage's resolve and execute receive
    waiting_for: str | None = None  # an earlier experiment's result that does not exist yet


@dataclass
class Point:
    """One run of the plan."""

    experiment: str
    stage: str
    params: dict
    status: str  # to do | done | resume | waiting | failed
    run_id: int | None = None
    execute: Callable[[], int | None] | None = None
    error: str | None = None
    key: str | None = None  # names the point between the workers of a study (see plan.point_key)
    config: dict | None = None  # its resolved config, when it could be resolved at planning

    @property
    def label(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.params.items())


@dataclass
class Plan:
    """One `seqrec run`: the file, its experiments in the order they run, and each one's points once planned."""

    spec: ExperimentsFile
    path: Path
    order: list[str]
    points: dict[str, list[Point]] = field(default_factory=dict)

    def where(self, name: str, key: str) -> str:
        """``FILE: experiments.NAME.TABLE.KEY``, the table being the one whose value takes effect."""
        experiment = self.spec.experiments[name]
        table = next((table for table in ("zip", "grid", "params") if key in getattr(experiment, table)), None)
        return f"{self.path}: experiments.{name}.{f'{table}.' if table else ''}{key}"

    def result(self, reference: str) -> str | None:
        """``run:ID`` of the run a checked reference names, or None while that experiment has not made it."""
        points = self.points.get(reference.partition(":")[2], [])
        done = [point for point in points if point.status == "done" and point.run_id is not None]
        return f"run:{done[0].run_id}" if done else None

    def result_of_seed(self, reference: str, seed: int) -> int | None:
        """The run id that a checked seed-matched reference's experiment made with this seed (None while it has
        not): ``teacher = "train:sasrec"`` gives every seed of an experiment the run of that seed."""
        points = self.points.get(reference.partition(":")[2], [])
        return next((point.run_id for point in points if point.status == "done" and point.run_id is not None
                     and point.params.get("seed") == seed), None)

    def check_seeded_reference(self, name: str, key: str, value, stage_name: str) -> None:
        """``value`` names, as "<stage_name>:<experiment>", an experiment of this file that runs before ``name``,
        makes one run per seed (no grid or zip), and has every seed ``name`` asks for."""
        where = f"{self.where(name, key)}: {value!r}"
        source_name = value.partition(":")[2] if isinstance(value, str) and value.startswith(f"{stage_name}:") else ""
        source = self.spec.experiments.get(source_name)
        if source is None or source.stage != stage_name:
            raise SeqrecError(f"{where}: name an experiment of this file with stage = {stage_name!r}, as "
                              f"\"{stage_name}:<experiment>\"")
        if source_name not in self.order[:self.order.index(name)]:
            raise SeqrecError(f"{where}: {source_name!r} must run first; add it to experiments.{name}.after")
        if source.grid or source.zip:
            raise SeqrecError(f"{where}: that experiment has a grid or zip, so a seed names more than one run")
        absent = sorted(set(self.spec.experiments[name].seeds) - set(source.seeds))
        if absent:
            raise SeqrecError(f"{where}: that experiment has no seed {', '.join(map(str, absent))}")

    def model(self, name: str, field_name: str) -> str | None:
        """What an experiment's ``model`` / ``teacher`` / ``student`` names: a [models] entry's alias, or the
        ``run:ID`` of the earlier experiment's result it references (None while there is none)."""
        value = getattr(self.spec.experiments[name], field_name)
        if value in self.spec.models:
            return self.spec.models[value].alias
        return self.result(value)

    def llm(self, name: str):
        """The LLM an experiment names, as ``LLMOptions``: its ``endpoint`` (an [endpoints] table: the URL, the
        served model and the client's settings; the API key stays in its environment variable) or else its
        ``model`` (an alias, or an earlier experiment's ``run:ID``; None while there is none)."""
        experiment = self.spec.experiments[name]
        if experiment.endpoint is None:
            return LLMOptions(llm=self.model(name, "model"))
        spec = self.spec.endpoints[experiment.endpoint]
        settings = {**spec.options, **({"capabilities": spec.capabilities} if spec.capabilities else {})}
        return LLMOptions(endpoint=spec.base_url, endpoint_model=spec.model, api_key_env=spec.api_key_env,
                          max_concurrency=spec.max_concurrency, timeout=spec.timeout, max_retries=spec.max_retries,
                          settings=settings)

    def template(self, name: str) -> str | None:
        """The template file of the experiment's ``prompt`` ([prompts] entry), relative paths taken from the
        experiments file's folder; None when it names none."""
        prompt = self.spec.experiments[name].prompt
        if prompt is None:
            return None
        path = Path(self.spec.prompts[prompt].template).expanduser()
        return str(path if path.is_absolute() else self.path.parent / path)


class Stage:
    """What every stage declares. Subclasses set ``name`` and implement ``requests``, ``resolve`` and ``execute``."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()  # the experiment's fields it needs (dataset, model, teacher, student)
    uses: ClassVar[tuple[str, ...]] = ()  # fields it accepts without needing them (a prompt)
    calls_llm: ClassVar[bool] = False  # it calls an LLM named by exactly one of model and endpoint (``Plan.llm``)
    required: ClassVar[tuple[str, ...]] = ()  # parameters that have no default
    references: ClassVar[dict[str, str]] = {}  # field or parameter -> what a "<stage>:<experiment>" there must make
    makes: ClassVar[tuple[str, ...]] = ()  # what its runs hold that other experiments may name: model, item-embeddings
    every_process: ClassVar[bool] = False  # True: every process of a multi-process job runs it (it trains through
    # Accelerate); False: the main process alone, so that no two processes write the same files
    per_experiment: ClassVar[bool] = False  # its runs count only for the experiment that made them
    resumable: ClassVar[bool] = False  # an interrupted run is continued from its checkpoint, not started again

    def declared(self) -> dict:
        """Its options declared on config dataclasses (``training.options.option``), by name: their ranges and
        choices are checked as the CLI and the Python functions check them."""
        return {}

    def parameters(self) -> set[str]:
        """The keys its params, grid and zip may set."""
        return set(self.declared())

    def choices(self) -> dict[str, tuple]:
        """Allowed values of parameters that are not declared options (a model name, an LLM2Rec step)."""
        return {}

    def check(self, plan: Plan, name: str) -> None:
        """Checks of its own beyond the declared ones, before anything runs."""

    def requests(self, plan: Plan, name: str) -> list[Request]:
        raise NotImplementedError

    def resolvable(self, arguments: dict) -> bool:
        """Whether a request's config can be resolved now: its dataset is prepared and its models are pulled (a
        request that is not is to do, resolved when it runs)."""
        dataset = arguments.get("dataset")
        if dataset is not None and open_store().get_dataset(dataset) is None:
            return False
        names = [arguments[key] for key in self.needs if key in ("model", "teacher", "student")]
        llm = arguments.get("llm")
        if self.calls_llm and isinstance(llm, LLMOptions) and llm.llm is not None:  # (an endpoint: when called)
            names.append(llm.llm)
        return all(is_available(name) for name in names)

    def resolve(self, arguments: dict) -> dict:
        """The fully resolved config of a request: every setting that changes the result, defaults filled in."""
        raise NotImplementedError

    def lookup(self, config: dict, experiment: str) -> Found | None:
        """The run the store holds with this config: finished, or unfinished when the stage can resume."""
        statuses = ("finished", "interrupted", "running") if self.resumable else "finished"
        run = open_store().find_run(config_hash(config), kind=self.name, status=statuses,
                                    experiment=experiment if self.per_experiment else None)
        return None if run is None else Found(run.id, run.status)

    def execute(self, arguments: dict, experiment: str, resume: int | None) -> int | None:
        """Run the request; returns its run id (None on processes other than the main one)."""
        raise NotImplementedError
