"""LLM re-ranking's costs: scoring against generating the same users, every ML-100K test user re-ranked with the
share of the time in the LLM's forward passes, and a re-run answered entirely from the call cache.

    .venv/bin/python benchmarks/rerank.py                              # 32 users for the modes, all 943 users
    .venv/bin/python benchmarks/rerank.py --speed-users 8 --users 16   # a quick check that it runs

Everything happens in a fresh SEQREC_HOME: ML-100K (5-core, leave-one-out, histories of 10) and a base SASRec
(hidden 64, ``--epochs`` epochs; its quality does not change the LLM's cost), then `seqrec rerank` of its top 20 by
SmolLM2-135M-Instruct (bf16 where the CPU has native bf16 matmuls, else fp32; batches of ``--batch-size``):

- modes: the same ``--speed-users`` users in logprobs mode (one forward pass per user) and in generate mode
  (greedy, up to 4 K + 8 tokens, parsed), users per second of LLM time (answers from the model, none from the
  cache).
- all users: logprobs over ``--users`` users (943: every test user): wall time of the call, and the share of it
  spent inside the model's forward passes (timed by hooks on the model).
- cached re-run: the finished run deleted, the same command again: every answer from the ``llm_call`` table and no
  model loaded; its wall time against the first run's, and that of asking for the finished run itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def forward_timer():
    """Seconds spent inside every LocalBackend model's forward passes, from hooks added as each model loads."""
    from seqrec.llm.backends.local import LocalBackend

    spent = {"seconds": 0.0, "started": 0.0}
    original = LocalBackend.__init__

    def timed(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.model.register_forward_pre_hook(lambda *_: spent.update(started=time.perf_counter()))
        self.model.register_forward_hook(
            lambda *_: spent.update(seconds=spent["seconds"] + time.perf_counter() - spent["started"]))

    LocalBackend.__init__ = timed
    return spent


def base_model(epochs: int) -> int:
    from seqrec.data.prepare import prepare_movielens
    from seqrec.recsys.runner import train_model

    dataset = prepare_movielens("ml-100k", max_len=10).name
    (run_id,) = train_model("sasrec", dataset, seeds=[0], hidden=64, epochs=epochs, batch_size=256)
    return run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--users", type=int, default=943, help="Users of the all-users run (943: every one).")
    parser.add_argument("--speed-users", type=int, default=32, help="Users of the logprobs-vs-generate comparison.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="Epochs of the base SASRec.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models-home", help="A SEQREC_HOME to pull the model into (and find it in again).")
    arguments = parser.parse_args()

    import torch

    from seqrec.llm.registry import model_record
    from seqrec.methods.rerank import rerank
    from seqrec.store import open_store

    torch.set_num_threads(arguments.threads)
    os.environ["SEQREC_HOME"] = arguments.models_home or tempfile.mkdtemp(prefix="seqrec-bench-models-")
    model = model_record(arguments.model).path  # pulled once, then used in place as a folder
    os.environ["SEQREC_HOME"] = tempfile.mkdtemp(prefix="seqrec-bench-")
    base = base_model(arguments.epochs)
    spent = forward_timer()
    options = dict(top_k=20, batch_size=arguments.batch_size)

    rates = {}
    for mode in ("logprobs", "generate"):
        result = rerank(base, model, mode=mode, users=arguments.speed_users, **options)
        counts = result.counts
        rates[mode] = counts["users"] / counts["llm_seconds"]
        outcomes = ", ".join(f"{key} {int(counts[key])}" for key in ("parsed", "repaired", "fallback"))
        print(f"{mode:>9}: {int(counts['users'])} users in {counts['llm_seconds']:.1f} s of LLM time "
              f"({counts['seconds']:.1f} s in all): {rates[mode]:.2f} users/s; answers {outcomes}", flush=True)
    print(f"logprobs / generate: {rates['logprobs'] / rates['generate']:.1f}x more users per second (target 5x)")

    spent["seconds"] = 0.0
    started = time.perf_counter()
    first = rerank(base, model, users=arguments.users, **options)
    wall = time.perf_counter() - started
    print(f"all users: {int(first.counts['users'])} users re-ranked in {wall:.1f} s "
          f"({first.counts['users'] / wall:.2f} users/s), {100 * spent['seconds'] / wall:.0f}% of it in the LLM's "
          f"forward passes ({spent['seconds']:.1f} s); N@10 {first.metrics['ndcg@10']:.4f} re-ranked, "
          f"{first.base['ndcg@10']:.4f} base", flush=True)

    started = time.perf_counter()
    rerank(base, model, users=arguments.users, **options)
    finished = time.perf_counter() - started
    open_store().delete_run(first.run_id)
    started = time.perf_counter()
    again = rerank(base, model, users=arguments.users, **options)
    cached = time.perf_counter() - started
    calls = open_store().final_metrics(again.run_id)["llm"]
    assert again.metrics == first.metrics
    print(f"cached re-run: {cached:.2f} s ({int(calls['llm_cache_hits'])} answers from the cache, "
          f"{int(calls['llm_fresh_calls'])} fresh): {wall / cached:.0f}x faster than the first run (target 100x); "
          f"the finished run itself found in {finished:.2f} s ({wall / finished:.0f}x)")


if __name__ == "__main__":
    main()
