"""What each report table shows, declared in one place: which runs, how they name rows and columns, which metrics,
and which row every other row is tested against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from seqrec.methods.delrec_options import ABLATION_LABELS, MODEL_NAMES

# Metrics shown per evaluation-protocol family (config["eval"] is "full" or "sampled:<negatives>"), in the papers'
# column order: full ranking as in the LLM2Rec-style tables, sampled candidates as in DELRec's.
METRICS = {
    "full": ("recall@10", "ndcg@10", "recall@20", "ndcg@20"),
    "sampled": ("hr@1", "hr@5", "ndcg@5", "hr@10", "ndcg@10"),
}
SHORT_NAMES = {"recall": "R", "ndcg": "N", "hr": "HR", "mrr": "MRR"}
NAME_KEYS = ("model", "item_emb")  # joined with " + " to name a row; other row keys are shown as key=value


@dataclass(frozen=True)
class TableSpec:
    title: str
    include: Callable[[dict], bool]  # does a run with this config belong to the table?
    row_keys: tuple[str, ...]  # config keys whose values name a row ("variant", when set, names it alone)
    # config values that turn a row into the row it is tested against, or a function of the run's config giving them
    baseline: dict | Callable[[dict], dict]
    baseline_note: str = ""  # says what a function baseline is
    column_keys: tuple[str, ...] = ("dataset", "eval")  # run fields (then config keys) that name a column group
    metrics: dict[str, tuple[str, ...]] = field(default_factory=lambda: METRICS)
    kinds: tuple[str, ...] = ("train",)
    # kind -> (split, config values): every run of that kind also makes the row of those config values from that
    # split's metrics (a re-ranking's base model, scored on the same users)
    companions: dict[str, tuple[str, dict]] = field(default_factory=dict)
    # the split where a run of a row logged p_<metric> of a paired test over users, used for a row with one seed
    user_tests: str | None = None
    label: Callable[[dict], str] | None = None  # names a row from a config of its row keys (default: row_label)
    derived: dict[str, Callable[[dict], object]] = field(default_factory=dict)  # row keys computed from a config
    relative: bool = False  # show each row's relative change against its baseline row
    paper_columns: bool = False  # --paper adds the paper's own datasets as columns (ours rarely match them)

    def row_name(self, config: dict) -> str:
        return self.label(config) if self.label is not None else row_label(config, self.row_keys)

    def row_config(self, config: dict) -> dict:
        """The run's config with the derived row keys added."""
        return {**config, **{key: derive(config) for key, derive in self.derived.items()}}

    def baseline_values(self, config: dict) -> dict:
        return self.baseline(config) if callable(self.baseline) else self.baseline

    def baseline_text(self) -> str:
        if callable(self.baseline):
            return self.baseline_note
        return ", ".join(f"{key}={'none' if value is None else value}" for key, value in self.baseline.items())


def _plain(config: dict) -> bool:
    return not any(config.get(key) for key in ("noise", "rerank", "variant"))


def delrec_label(config: dict) -> str:
    """A DELRec run's name: "DELRec (SASRec)", with the paper's name of its ablation unless it is the default."""
    name = f"DELRec ({MODEL_NAMES.get(config['teacher_model'], config['teacher_model'])})"
    variant = config.get("variant") or config.get("ablation") or "none"
    return name if variant == "none" else f"{name} {ABLATION_LABELS.get(variant, variant)}"


def _delrec_row(config: dict) -> str:
    """Table II's rows: a conventional model ("SASRec") or DELRec with it, on its LLM ("DELRec (SASRec), smollm2")."""
    if not config.get("teacher_model"):
        return MODEL_NAMES.get(config["model"], config["model"])
    return f"{delrec_label(config)}, {config['model']}"


def _delrec_ablation_row(config: dict) -> str:
    """Tables III-IV's rows: the paper's variant name, then the conventional model and the LLM."""
    teacher = MODEL_NAMES.get(config["teacher_model"], config["teacher_model"])
    return f"{ABLATION_LABELS.get(config['variant'], config['variant'])} ({teacher}, {config['model']})"


def _in_delrec_table(config: dict) -> bool:
    if config.get("teacher_model"):  # a DELRec stage-2 run
        return config.get("variant") == "none"
    return (config.get("model") in ("sasrec", "gru4rec", "caser") and _plain(config)
            and not config.get("item_emb") and str(config.get("eval", "")).startswith("sampled:"))


def _profile_candidate(config: dict) -> bool:
    """A model the second paper distils profiles into, on ID embeddings as there, with or without profiles."""
    return _plain(config) and config.get("model") in ("sasrec", "bert4rec") and not config.get("item_emb")


TABLES = {
    "main": TableSpec(
        title="Main results: each model with ID or frozen LLM item embeddings",
        include=_plain,
        row_keys=("model", "item_emb"),
        baseline={"model": "sasrec", "item_emb": None},
    ),
    "distill": TableSpec(
        title="Distillation: base vs distilled LLM item embedders",
        include=lambda config: _plain(config) and bool(config.get("item_emb")),
        row_keys=("model", "item_emb"),
        # a distilled student's embeddings record the label of its base model's embeddings
        baseline=lambda config: {"item_emb": config.get("item_emb_baseline") or config.get("item_emb")},
        baseline_note="the base student's item embeddings",
    ),
    "noise": TableSpec(
        title="Robustness: deletion noise and LLM re-ranking",
        # a table of test numbers: re-rankings of validation users (an alpha sweep's) stay out
        include=lambda config: not config.get("variant") and config.get("split") in (None, "test"),
        row_keys=("model", "item_emb", "noise", "rerank", "users"),
        # a re-ranked row against its base model on the same inputs; a noisy row against the clean one
        baseline=lambda config: {"rerank": None} if config.get("rerank") else {"noise": None},
        baseline_note="the base model's ranking of the same (noisy or clean) histories for a re-ranked row, and "
                      "noise=none for a noisy one",
        # noisy inputs are usually a re-evaluation of a model trained on clean data
        kinds=("train", "evaluate", "rerank"),
        companions={"rerank": ("base", {"rerank": None})},
        user_tests="paired",
    ),
    "ablation": TableSpec(
        title="Ablations: each variant against the full model",
        include=lambda config: not config.get("noise"),
        row_keys=("variant", "model", "item_emb"),
        baseline={"variant": None},
    ),
    # user-profile distillation (the second paper)
    "profiles": TableSpec(
        title="User-profile distillation: each model with and without the profile guide loss",
        include=_profile_candidate,
        row_keys=("model", "distilled"),
        derived={"distilled": lambda config: bool(config.get("profiles"))},
        baseline={"distilled": False},
        metrics={"full": ("recall@10", "ndcg@10")},  # the paper's columns
        relative=True,
        paper_columns=True,
    ),
    # DELRec (the third paper): Table II, and Tables III-IV; "ablation" above stays the first paper's variants
    "delrec": TableSpec(
        title="DELRec and its conventional models on the same stored candidate sets",
        include=_in_delrec_table,
        row_keys=("model", "teacher_model", "variant"),
        baseline=lambda config: {"model": config["teacher_model"], "teacher_model": None} if config.get(
            "teacher_model") else {},
        baseline_note="its conventional model alone (DELRec (SASRec) against SASRec)",
        label=_delrec_row,
        kinds=("train", "delrec-finetune"),
    ),
    "delrec-ablation": TableSpec(
        title="DELRec ablations: each variant against the default DELRec",
        include=lambda config: bool(config.get("teacher_model")),
        row_keys=("model", "teacher_model", "variant"),
        baseline={"variant": "none"},
        label=_delrec_ablation_row,
        kinds=("delrec-finetune",),
    ),
}


def row_label(config: dict, keys: tuple[str, ...] = ("variant", *NAME_KEYS)) -> str:
    """A row's name from a run's config: its variant label if it has one, else model + item embeddings + conditions."""
    if config.get("teacher_model"):  # a DELRec run (stage 1 or 2)
        return delrec_label(config)
    if "variant" in keys and config.get("variant"):
        return str(config["variant"])
    name = " + ".join(str(config[key]) for key in NAME_KEYS if key in keys and config.get(key)) or "?"
    conditions = [key if config[key] is True else f"{key}={config[key]}"
                  for key in keys if key not in NAME_KEYS and key != "variant" and config.get(key)]
    return ", ".join([name, *conditions])


def protocol_family(protocol: str) -> str:
    return protocol.split(":", 1)[0]


def short_metric(metric: str) -> str:
    """recall@10 -> R@10, ndcg@5 -> N@5, hr@1 -> HR@1: the papers' column names."""
    name, _, cutoff = metric.partition("@")
    return f"{SHORT_NAMES.get(name, name)}@{cutoff}" if cutoff else metric
