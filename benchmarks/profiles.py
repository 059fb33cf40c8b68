"""Profile distillation's costs: batched profile generation against one user at a time, and the guide loss's share
of a SASRec epoch.

    .venv/bin/python benchmarks/profiles.py generate --users 32 --threads 1      # SmolLM2-135M-Instruct, ML-100K
    .venv/bin/python benchmarks/profiles.py guide --threads 1                     # SASRec epochs with and without

generate: the same users and prompts (the short prompt, max_tokens 64, temperature 0.7, prompts fitted into 1024
tokens: longer histories are cut into parts and merged, agg_after) through
``generate_profiles``, once with padded batches of ``--batch-size`` users and once with batches of one; each in a
fresh SEQREC_HOME so that nothing comes from the call cache. Completion tokens per second of generation time.

guide: SASRec (hidden 64, 2 blocks, max length 50, the all-position objective) on ML-100K, the median time of an
epoch after one warm-up epoch (plain and guided epochs alternate), plain and with the guide loss (layer 1, exponential pooling, MSE) against random
128-wide user vectors (the guide's cost does not depend on what the vectors hold).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def use_home(folder: str) -> None:
    os.environ["SEQREC_HOME"] = folder  # read afresh by every store and path lookup
    os.environ.pop("SEQREC_DB", None)  # the home's own database, so that no call comes from another's cache


def prepared_ml100k(split: str) -> str:
    from seqrec.data.prepare import prepare_movielens

    return prepare_movielens("ml-100k", name=f"ml-100k-{split}", split=split, max_len=50).name


def generate(arguments) -> None:
    import torch

    from seqrec.llm.registry import model_record
    from seqrec.methods.profiles import generate_profiles
    from seqrec.store import open_store

    torch.set_num_threads(arguments.threads)
    use_home(arguments.models_home or tempfile.mkdtemp(prefix="seqrec-bench-models-"))
    model = model_record(arguments.model).path  # pulled once, then used in place as a folder
    results = {}
    for label, batch_size in (("batched", arguments.batch_size), ("one at a time", 1)):
        use_home(tempfile.mkdtemp(prefix="seqrec-bench-"))
        dataset = prepared_ml100k("global-time")
        started = time.perf_counter()
        result = generate_profiles(dataset, model, prompt="short", max_tokens=arguments.max_tokens,
                                   temperature=0.7, users=arguments.users, batch_size=batch_size,
                                   dtype=arguments.dtype, context_length=arguments.context_length)
        wall = time.perf_counter() - started
        metrics = open_store().final_metrics(result.run_id)["profiles"]
        results[label] = metrics["tokens_per_s"]
        prompt_rate = metrics["prompt_tokens"] / metrics["generation_seconds"]
        print(f"{label:>14}: {int(metrics['users'])} users, {int(metrics['calls'])} calls, "
              f"{int(metrics['prompt_tokens'])} prompt + {int(metrics['completion_tokens'])} completion tokens, "
              f"{metrics['generation_seconds']:.1f} s generating ({wall:.1f} s in all): "
              f"{metrics['tokens_per_s']:.1f} completion tokens/s ({prompt_rate:.0f} prompt tokens/s)", flush=True)
    print(f"batched / one at a time: {results['batched'] / results['one at a time']:.1f}x "
          f"({arguments.threads} thread(s), {arguments.model}, dtype {arguments.dtype})")


def guide(arguments) -> None:
    import numpy as np
    import torch

    from seqrec.data.prepare import load_dataset
    from seqrec.recsys.configs import ProfileConfig, SASRecConfig
    from seqrec.recsys.guide import ProfileGuided
    from seqrec.recsys.models.sasrec import SASRec
    from seqrec.recsys.runner import training_examples

    torch.set_num_threads(arguments.threads)
    use_home(tempfile.mkdtemp(prefix="seqrec-bench-"))
    data = load_dataset(prepared_ml100k("loo"))
    config = SASRecConfig(hidden=64, heads=2, layers=2, dropout=0.2, max_len=data.max_len)
    examples = training_examples(data, config)
    loader = torch.utils.data.DataLoader(examples, batch_size=64, shuffle=True, collate_fn=examples.collate,
                                         generator=torch.Generator().manual_seed(0))
    vectors = np.random.default_rng(0).normal(size=(data.num_users + 1, 128)).astype(np.float32)
    present = np.ones(data.num_users + 1, dtype=bool)
    present[0] = False

    def epoch(model, optimizer) -> float:
        started = time.perf_counter()
        for batch in loader:
            model(*batch).backward()
            optimizer.step()
            optimizer.zero_grad()
        return time.perf_counter() - started

    torch.manual_seed(0)
    models = {"plain": SASRec(data.num_items, config)}
    torch.manual_seed(0)
    models["guided"] = ProfileGuided(SASRec(data.num_items, config),
                                     ProfileConfig(profiles="run:0", profile_pool="exp", profile_layer=1),
                                     vectors, present, seed=0)
    optimizers = {name: torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
                  for name, model in models.items()}
    times = {name: [] for name in models}
    for _ in range(arguments.epochs + 1):  # alternating, so that a change in the machine's load hits both alike
        for name, model in models.items():
            times[name].append(epoch(model, optimizers[name]))
    plain, guided = (statistics.median(times[name][1:]) for name in ("plain", "guided"))
    print(f"SASRec epoch on ML-100K ({len(examples)} sequences, {arguments.threads} thread(s)): plain {plain:.2f} s, "
          f"with the guide {guided:.2f} s (+{100 * (guided / plain - 1):.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generating = commands.add_parser("generate")
    generating.add_argument("--model", default="smollm2-135m-instruct")
    generating.add_argument("--users", type=int, default=32)
    generating.add_argument("--batch-size", type=int, default=16)
    generating.add_argument("--max-tokens", type=int, default=64)
    generating.add_argument("--dtype", default="auto")
    generating.add_argument("--context-length", type=int, default=1024,
                            help="Fit prompts into this many tokens (longer histories are cut, agg_after).")
    generating.add_argument("--threads", type=int, default=1)
    generating.add_argument("--models-home", help="A SEQREC_HOME to pull the model into (and find it in again).")
    guiding = commands.add_parser("guide")
    guiding.add_argument("--epochs", type=int, default=3)
    guiding.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    generate(arguments) if arguments.command == "generate" else guide(arguments)


if __name__ == "__main__":
    main()
