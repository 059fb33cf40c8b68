"""experiments.toml: named datasets, models, endpoints and prompts, and the experiments that refer to them.

The structure is validated strictly (unknown keys are errors naming their key path) and stage names against the
registry of stages; a stage's parameters are validated against what the stage declares when the experiment is
planned (see ``seqrec/experiments/stages/``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from seqrec.errors import SeqrecError
from seqrec.llm.backends.options import ENDPOINT_DEFAULTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Scalar = str | int | float | bool


MODEL_REFERENCE = "A [models] entry, or an earlier experiment's trained model: \"<stage>:<experiment>\"."


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetSpec(Strict):
    """How to prepare a dataset: ``source`` picks the reader, ``options`` go to its prepare function."""

    source: Literal["movielens", "amazon2023", "atomic", "csv"]
    options: dict[str, Any] = Field(default_factory=dict)


class ModelEntry(Strict):
    """An LLM or text encoder by registry alias, Hugging Face id or local folder."""

    alias: str
    options: dict[str, Any] = Field(default_factory=dict)


class EndpointSpec(Strict):
    """An OpenAI-compatible endpoint; the key is read from the named environment variable, never stored."""

    base_url: str
    model: str
    api_key_env: str | None = None
    max_concurrency: int = Field(ENDPOINT_DEFAULTS["max_concurrency"], ge=1, description="Requests in flight at once.")
    timeout: float = Field(ENDPOINT_DEFAULTS["timeout"], gt=0, description="Seconds to wait for one answer.")
    max_retries: int = Field(ENDPOINT_DEFAULTS["max_retries"], ge=0,
                             description="Retries of a timed-out, rate-limited or failed request.")
    capabilities: dict[Literal["generate", "score", "chat"], bool] = Field(
        default_factory=dict, description="Overrides of what the endpoint is detected to support.")
    options: dict[str, Any] = Field(default_factory=dict)


class PromptSpec(Strict):
    template: str
    options: dict[str, Any] = Field(default_factory=dict)


class ExperimentSpec(Strict):
    """One study: a stage run over seeds and over a grid (cartesian) and/or zip (paired) of parameters."""

    stage: str | None = Field(None, description="A registered stage (see `seqrec run --schema`).")
    description: str = ""
    extends: str | None = None
    after: list[str] = Field(default_factory=list, description="Experiments that must run first.")
    dataset: str | None = None
    model: str | None = Field(None, description=MODEL_REFERENCE)
    teacher: str | None = Field(None, description=MODEL_REFERENCE)
    student: str | None = Field(None, description=MODEL_REFERENCE)
    endpoint: str | None = None
    prompt: str | None = None
    seeds: list[int] = Field(default_factory=lambda: [0])
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def zip_lists_have_equal_length(self) -> "ExperimentSpec":
        lengths = {len(values) for values in self.zip.values()}
        if len(lengths) > 1:
            raise ValueError(f"zip lists must have equal lengths, got {sorted(lengths)}")
        return self


class ExperimentsFile(Strict):
    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)
    models: dict[str, ModelEntry] = Field(default_factory=dict)
    endpoints: dict[str, EndpointSpec] = Field(default_factory=dict)
    prompts: dict[str, PromptSpec] = Field(default_factory=dict)
    experiments: dict[str, ExperimentSpec] = Field(default_factory=dict)


REFERENCES = {"dataset": "datasets", "model": "models", "teacher": "models", "student": "models",
              "endpoint": "endpoints", "prompt": "prompts"}


def load_experiments(path: Path | str = "experiments.toml") -> ExperimentsFile:
    """Parse and validate the file; every problem is one message naming the file and the key path or line."""
    path = Path(path)
    if not path.exists():
        raise SeqrecError(f"{path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SeqrecError(f"{path}: TOML syntax error: {exc}") from None
    try:
        spec = ExperimentsFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise SeqrecError(f"{path}: {where}: {first['msg']}{more}") from None
    resolve_extends(spec, path)
    check_references(spec, path)
    return spec


def resolve_extends(spec: ExperimentsFile, path: Path) -> None:
    """``extends = "other"`` copies the other experiment's settings (one level), then applies its own."""
    resolved = {}
    for name, experiment in spec.experiments.items():
        if experiment.extends is None:
            continue
        base = spec.experiments.get(experiment.extends)
        if base is None:
            raise SeqrecError(f"{path}: experiments.{name}.extends: unknown experiment {experiment.extends!r}")
        if base.extends is not None:
            raise SeqrecError(f"{path}: experiments.{name}.extends: {experiment.extends!r} extends another "
                              "experiment itself; only one level is allowed")
        own = experiment.model_dump(exclude_unset=True)
        merged = base.model_dump()
        for key in ("params", "grid", "zip"):
            merged[key] = {**merged[key], **own.pop(key, {})}
        merged.update(own)
        resolved[name] = ExperimentSpec.model_validate(merged)
    spec.experiments.update(resolved)


def check_references(spec: ExperimentsFile, path: Path) -> None:
    from seqrec.experiments.stages import is_reference, stage_named, stage_names

    for name, experiment in spec.experiments.items():
        where = f"{path}: experiments.{name}.stage"
        if experiment.stage is None:
            raise SeqrecError(f"{where}: missing (one of {', '.join(stage_names())})")
        stage_named(experiment.stage, where)
        for field_name, table in REFERENCES.items():
            target = getattr(experiment, field_name)
            if target is None or target in getattr(spec, table) or (table == "models" and is_reference(target)):
                continue
            known = ", ".join(getattr(spec, table)) or "none declared"
            also = ' or "<stage>:<experiment>"' if table == "models" else ""
            raise SeqrecError(f"{path}: experiments.{name}.{field_name}: unknown {table[:-1]} {target!r} "
                              f"(declared: {known}){also}")
        for other in experiment.after:
            if other not in spec.experiments:
                raise SeqrecError(f"{path}: experiments.{name}.after: unknown experiment {other!r}")


def json_schema() -> str:
    """The JSON Schema of experiments.toml, for editors (e.g. Taplo / Even Better TOML)."""
    from seqrec.experiments.stages import stage_names

    schema = ExperimentsFile.model_json_schema()
    schema["$defs"]["ExperimentSpec"]["properties"]["stage"]["anyOf"][0]["enum"] = stage_names()
    return json.dumps(schema, indent=2)
