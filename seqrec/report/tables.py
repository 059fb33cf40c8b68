"""A report table computed from the database: cells with mean, std, best and significance, before any formatting."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from scipy import stats

from seqrec.errors import SeqrecError
from seqrec.report.published import published_dataset, published_tables
from seqrec.report.specs import TABLES, TableSpec, protocol_family, short_metric
from seqrec.store import Run, Store, open_store

ALPHA = 0.05
DEFAULT_PROTOCOL = "full"  # what training evaluates when a config names no protocol


@dataclass(frozen=True)
class Column:
    group: str  # the column group: dataset and protocol, e.g. "ml-100k (full)"
    dataset: str
    protocol: str
    metric: str

    @property
    def metric_label(self) -> str:
        return short_metric(self.metric)


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None
    n: int = 0  # seeds behind the mean; 0 for a published number
    best: bool = False
    p_value: float | None = None
    relative: float | None = None  # the mean's relative change against the baseline row's (0.05 = +5%)
    missing: str = ""

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA


@dataclass
class Row:
    label: str
    cells: list[Cell]
    published: bool = False


@dataclass
class ReportTable:
    kind: str
    title: str
    columns: list[Column]
    rows: list[Row]
    footnotes: list[str] = field(default_factory=list)


def _column_value(run: Run, key: str):
    value = getattr(run, key) if key in Run.model_fields else run.config.get(key)
    return DEFAULT_PROTOCOL if value is None and key == "eval" else value


def _selected_runs(store: Store, experiments: list[str | None]) -> list[Run]:
    """The runs of the named experiments (each a name, or a comma-separated list of names or patterns such as
    ``delrec-base-*``: a study spread over experiments), or every run."""
    patterns = [pattern.strip() for name in experiments if name for pattern in name.split(",") if pattern.strip()]
    if not patterns:
        return store.list_runs(limit=None)
    if not any(mark in pattern for pattern in patterns for mark in "*?["):
        return [run for pattern in patterns for run in store.list_runs(experiment=pattern, limit=None)]
    return [run for run in store.list_runs(limit=None)
            if any(fnmatch.fnmatchcase(run.experiment or "", pattern) for pattern in patterns)]


def _runs_frame(store: Store, spec: TableSpec, experiments: list[str | None]) -> pd.DataFrame:
    """One row per run of the table (any status), oldest first: its row label, baseline row and column group."""
    runs = [run for run in _selected_runs(store, experiments)
            if run.kind in spec.kinds and spec.include(run.config)]
    records = []
    for run in sorted(runs, key=lambda run: run.id):
        keys = dict(zip(spec.column_keys, (_column_value(run, key) for key in spec.column_keys)))
        first, *rest = keys.values()
        rows = [("test", spec.row_config(run.config))]
        if run.kind in spec.companions:
            split, values = spec.companions[run.kind]
            rows.insert(0, (split, spec.row_config({**run.config, **values})))
        for split, config in rows:
            identity = {key: config.get(key) for key in spec.row_keys}
            records.append({
                "run": run.id, "status": run.status, "seed": run.seed, "split": split,
                "row": spec.row_name(config),
                "baseline": spec.row_name({**identity, **spec.baseline_values(config)}),
                "group": f"{first} ({', '.join(map(str, rest))})" if rest else str(first),
                "dataset": str(keys.get("dataset", "")), "protocol": str(keys.get("eval", DEFAULT_PROTOCOL)),
            })
    # object dtype keeps seeds as the integers (or None) they are
    return pd.DataFrame(records, columns=["run", "status", "seed", "split", "row", "baseline", "group", "dataset",
                                          "protocol"], dtype=object)


def _final_values(store: Store, finished: pd.DataFrame) -> dict[tuple[str, str, str], dict]:
    """(row, group, metric) -> seed -> final value (of the row's split: test, or a companion row's), from the
    newest finished run per (row, group, seed)."""
    newest = finished.drop_duplicates(["row", "group", "seed"], keep="last")
    logged = {split: store.final_metrics_of([int(run) for run in rows["run"]], split=split)
              for split, rows in newest.groupby("split")}
    values: dict[tuple[str, str, str], dict] = {}
    for run in newest.itertuples():
        for metric, value in logged[run.split].get(run.run, {}).items():
            values.setdefault((run.row, run.group, metric), {})[run.seed] = value
    return values


def _user_tests(store: Store, spec: TableSpec, finished: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """(row, group, metric) -> p of the paired test over users that the row's newest run logged."""
    if spec.user_tests is None:
        return {}
    newest = finished[finished["split"] == "test"].drop_duplicates(["row", "group"], keep="last")
    logged = store.final_metrics_of([int(run) for run in newest["run"]], split=spec.user_tests)
    return {(run.row, run.group, key.removeprefix("p_")): value for run in newest.itertuples()
            for key, value in logged.get(run.run, {}).items()}


def _columns(spec: TableSpec, runs: pd.DataFrame, values: dict) -> list[Column]:
    """Column groups in order of first appearance, each with its protocol's metrics that some run logged."""
    columns = []
    for group in dict.fromkeys(runs["group"]):
        first = runs[runs["group"] == group].iloc[0]
        logged = {metric for (_, value_group, metric) in values if value_group == group}
        wanted = spec.metrics.get(protocol_family(first.protocol), tuple(sorted(logged)))
        columns += [Column(group, first.dataset, first.protocol, metric) for metric in wanted if metric in logged]
    return columns


def _seed_list(seeds) -> str:
    seeds = list(seeds)
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _missing(runs: pd.DataFrame, row: str, group: str, seeds: list, present) -> str:
    """'missing: sasrec/ml-100k (full) seed 2 (failed, run 7)': the runs a cell lacks, and what became of them."""
    absent = [seed for seed in seeds if seed not in present]
    if not absent:
        return ""
    tried = runs[(runs["row"] == row) & (runs["group"] == group) & (runs["status"] != "finished")]
    reasons = {run.seed: f"{run.status}, run {run.run}" for run in tried.itertuples()}
    plain = [seed for seed in absent if seed not in reasons]
    parts = ([_seed_list(plain)] if plain else []) + [f"seed {seed} ({reasons[seed]})" for seed in absent
                                                      if seed in reasons]
    return f"missing: {row}/{group} " + ", ".join(parts)


def _summarize(values: pd.Series) -> Cell:
    if values.empty:
        return Cell()
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    return Cell(mean=float(values.mean()), std=std, n=len(values))


def _paired_p(values: pd.Series, baseline: pd.Series) -> float | None:
    """Two-sided paired t-test over the seeds both rows have; None with fewer than two pairs, or when the
    differences do not vary (the test is undefined then)."""
    common = values.index.intersection(baseline.index)
    differences = values[common] - baseline[common]
    if len(common) < 2 or (differences - differences.mean()).abs().max() < 1e-12:
        return None
    return float(stats.ttest_rel(values[common], baseline[common]).pvalue)


def _mark_best(rows: list[Row], width: int) -> None:
    for index in range(width):
        means = [row.cells[index].mean for row in rows if row.cells[index].mean is not None]
        if len(means) < 2:
            continue
        for row in rows:
            cell = row.cells[index]
            cell.best = cell.mean is not None and math.isclose(cell.mean, max(means), rel_tol=0, abs_tol=1e-12)


def _paper_columns(kind: str, columns: list[Column]) -> list[Column]:
    """Columns for the papers' datasets that none of ours is, so that their numbers stand beside ours."""
    ours = {(published_dataset(column.dataset), column.protocol) for column in columns}
    extra = []
    for table in published_tables(kind):
        for dataset, metric in table.columns():
            column = Column(f"{dataset} (paper)", dataset, table.protocol, metric)
            if (dataset, table.protocol) not in ours and column not in extra:
                extra.append(column)
    return extra


def _published_rows(kind: str, columns: list[Column]) -> tuple[list[Row], list[str]]:
    """The papers' rows for the columns whose dataset and protocol they report, and the sources they come from."""
    rows: dict[str, Row] = {}
    sources = []
    for table in published_tables(kind):
        for index, column in enumerate(columns):
            dataset = published_dataset(column.dataset)
            if column.protocol != table.protocol or dataset is None:
                continue
            for (label, table_dataset, metric), (value, std) in table.values.items():
                if (table_dataset, metric) == (dataset, column.metric):
                    name = f"{table.tag} {label}"
                    row = rows.setdefault(name, Row(name, [Cell() for _ in columns], published=True))
                    row.cells[index] = Cell(mean=value, std=std,
                                            relative=table.relative.get((label, table_dataset, metric)))
                    if table.source not in sources:
                        sources.append(table.source)
    return list(rows.values()), sources


def ndcg_bounds(metrics: dict[str, float]) -> dict[str, tuple[float, float]]:
    """The (lowest, highest) NDCG@5 and NDCG@10 that sampled HR@1/5/10 and NDCG@5 allow with one target per
    example: an example counted in HR@k but not HR@j (j < k) adds between 1/log2(k + 1) and 1/log2(j + 2)."""
    hr1, hr5, hr10, ndcg5 = (metrics[key] for key in ("hr@1", "hr@5", "hr@10", "ndcg@5"))
    return {"ndcg@5": (hr1 + (hr5 - hr1) / math.log2(6), hr1 + (hr5 - hr1) / math.log2(3)),
            "ndcg@10": (ndcg5 + (hr10 - hr5) / math.log2(11), ndcg5 + (hr10 - hr5) / math.log2(7))}


BOUND_TOLERANCE = 2e-4  # published numbers are rounded to 4 decimals, and the bounds are computed from them


def _bound_notes(rows: list[Row], columns: list[Column]) -> list[str]:
    """A note for every NDCG value outside what its row's HR@1/5/10 and NDCG@5 in the same column group allow."""
    notes = []
    for row in rows:
        for group in dict.fromkeys(column.group for column in columns):
            means = {column.metric: cell.mean for column, cell in zip(columns, row.cells)
                     if column.group == group and cell.mean is not None}
            if not {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10"} <= set(means):
                continue
            for metric, (low, high) in ndcg_bounds(means).items():
                if not low - BOUND_TOLERANCE <= means[metric] <= high + BOUND_TOLERANCE:
                    side = f"exceeds {high:.4f}, the most" if means[metric] > high else f"is below {low:.4f}, the least"
                    notes.append(f"{row.label}, {group}: {short_metric(metric)} {means[metric]:.4f} {side} that its "
                                 "HR@1/5/10 and N@5 allow with one target per example.")
    if notes:
        notes.insert(0, "NDCG outside its HR bounds cannot come from ranking one target among the candidates, so "
                        "such a number cannot be matched exactly (many of DELRec's published NDCG values are so):")
    return notes


def _grouped(labels: list[str], baselines: dict[str, str]) -> list[str]:
    """Rows in first-run order, except that a row tested against another sits right under it (the noisy
    evaluation under its clean model, the distilled student under its base model)."""
    position = {label: index for index, label in enumerate(labels)}

    def order(label: str) -> tuple[int, bool, int]:
        root = baselines[label] if baselines[label] in position else label
        return position[root], root != label, position[label]

    return sorted(labels, key=order)


def _relative(values: pd.Series, baseline: pd.Series) -> float | None:
    """The relative change of the mean against the baseline's mean (None when the baseline's is 0 or absent)."""
    if values.empty or baseline.empty or baseline.mean() == 0:
        return None
    return float(values.mean() / baseline.mean() - 1)


def report_table(table: str, experiment: str | Sequence[str] | None = None, paper: bool = False,
                 store: Store | None = None) -> ReportTable:
    """Compute one report table from the finished runs (of one or more experiments, or of all)."""
    spec = TABLES.get(table)
    if spec is None:
        raise SeqrecError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    store = store or open_store()
    experiments = [experiment] if experiment is None or isinstance(experiment, str) else list(experiment) or [None]
    runs = _runs_frame(store, spec, experiments)
    finished = runs[runs["status"] == "finished"]
    if finished.empty:
        named = [name for name in experiments if name]
        where = (f"experiment{'s' if len(named) > 1 else ''} {', '.join(map(repr, named))}" if named
                 else "the database")
        raise SeqrecError(f"no finished runs for the {table} table in {where} (see `seqrec runs list`)")
    values = _final_values(store, finished)
    columns = _columns(spec, runs, values)
    seeds = sorted(set(runs["seed"]), key=lambda seed: (seed is None, seed or 0))
    baselines = dict(zip(runs["row"], runs["baseline"]))
    labels = _grouped(list(dict.fromkeys(runs["row"])), baselines)
    present: dict[tuple[str, str], set] = {}
    for (row, group, _), by_seed in values.items():
        present.setdefault((row, group), set()).update(by_seed)

    def series(row: str, column: Column) -> pd.Series:
        return pd.Series(values.get((row, column.group, column.metric), {}), dtype=float)

    user_tests = _user_tests(store, spec, finished)
    over_users = False
    rows, missing_notes = [], []
    for label in labels:
        cells = []
        for column in columns:
            missing = _missing(runs, label, column.group, seeds, present.get((label, column.group), ()))
            cell = _summarize(series(label, column))
            if cell.mean is None:
                cell.missing = missing or "-"
            elif missing and missing not in missing_notes:
                missing_notes.append(missing)
            if baselines[label] != label and baselines[label] in labels and cell.mean is not None:
                cell.p_value = _paired_p(series(label, column), series(baselines[label], column))
                if cell.p_value is None and cell.n == 1:
                    cell.p_value = user_tests.get((label, column.group, column.metric))
                    over_users |= cell.p_value is not None
                if spec.relative:
                    cell.relative = _relative(series(label, column), series(baselines[label], column))
            cells.append(cell)
        rows.append(Row(label, cells))
    _mark_best(rows, len(columns))

    notes = [
        f"Test split; mean ± std over {_seed_list(seeds)} (sample std, ddof=1); a single seed shows its value "
        "with n=1. Column groups name the dataset and evaluation protocol (full: the whole catalogue ranked; "
        "sampled:N: the target among N sampled negatives). R = Recall, N = NDCG, HR = hit rate.",
        "Bold: the best mean in its column among our rows.",
    ]
    if any(baselines[label] != label and baselines[label] in labels for label in labels):
        notes.append(f"† p < {ALPHA} in a two-sided paired t-test over seeds (scipy.stats.ttest_rel, runs paired by "
                     f"seed) against the baseline row: the same row with {spec.baseline_text()}.")
    else:
        notes.append(f"No significance test: no row has its baseline row ({spec.baseline_text()}) among these runs.")
    if over_users:
        notes.append("A row of one seed is tested over users instead: a two-sided paired t-test of each user's "
                     "value, re-ranked vs the base model's on the same users (the run's paired test).")
    if spec.relative:
        notes.append("In parentheses: the relative change of the mean against the baseline row's mean (published "
                     "rows: the improvement the paper prints).")
    if paper:
        extra = _paper_columns(table, columns) if spec.paper_columns else []
        columns = columns + extra
        for row in rows:
            row.cells += [Cell() for _ in extra]
        published, sources = _published_rows(table, columns)
        rows += published
        notes += [f"Published, as printed in {source}." for source in sources] or [
            "No published numbers match these datasets and evaluation protocols."]
        if extra:
            notes.append("Columns marked (paper) are the paper's datasets, on which we have no runs.")
    notes += _bound_notes(rows, columns)
    named = ", ".join(name for name in experiments if name)
    return ReportTable(kind=table, title=spec.title + (f" ({named})" if named else ""), columns=columns,
                       rows=rows, footnotes=notes + missing_notes)
