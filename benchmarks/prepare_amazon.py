"""Throughput and peak memory of `seqrec data prepare amazon2023` on a generated category.

Writes an Amazon Reviews 2023-format review file (default 1,000,000 reviews, gzipped like the release) and its
meta file into a temporary folder, prepares it with the default options (5-core, leave-one-out, max length 10)
into a temporary SEQREC_HOME, and prints reviews per second and the peak RSS (target: under 2 GB).

    python benchmarks/prepare_amazon.py [--reviews 1000000] [--plain]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

CATEGORY = "Video_Games"
WORDS = "great game fun controller graphics story works fine love it broken arrived late would buy again".split()


def open_out(path: Path, plain: bool):
    return path.open("w", encoding="utf-8") if plain else gzip.open(path, "wt", encoding="utf-8", compresslevel=1)


def generate(folder: Path, reviews: int, plain: bool, seed: int = 0) -> None:
    """Users and items drawn with long-tailed (power-law) popularity, as in the real data, written in blocks."""
    rng = np.random.default_rng(seed)
    n_users, n_items = reviews // 5, reviews // 20
    user_weights, item_weights = (1 / np.arange(1, n + 1) ** power for n, power in ((n_users, 0.6), (n_items, 0.9)))
    suffix = ".jsonl" if plain else ".jsonl.gz"
    time_ms = 1_500_000_000_000
    with open_out(folder / f"{CATEGORY}{suffix}", plain) as out:
        for start in range(0, reviews, 100_000):
            size = min(100_000, reviews - start)
            users = rng.choice(n_users, size, p=user_weights / user_weights.sum())
            items = rng.choice(n_items, size, p=item_weights / item_weights.sum())
            ratings = rng.integers(1, 6, size)
            steps = np.cumsum(rng.integers(1, 60_000, size))
            for user, item, rating, step in zip(users, items, ratings, steps):
                text = " ".join(rng.choice(WORDS, 12))
                out.write(json.dumps({"rating": float(rating), "title": "Review", "text": text, "images": [],
                                      "asin": f"B{item:09d}", "parent_asin": f"B{item:09d}",
                                      "user_id": f"A{user:027d}", "timestamp": int(time_ms + step),
                                      "helpful_vote": 0, "verified_purchase": True}) + "\n")
            time_ms += int(steps[-1])
    with open_out(folder / f"meta_{CATEGORY}{suffix}", plain) as out:
        for item in range(n_items):
            out.write(json.dumps({"main_category": "Video Games", "title": f"Game number {item} &amp; more",
                                  "average_rating": 4.2, "rating_number": 10, "features": ["Fast", "Fun"],
                                  "description": ["A generated item."], "price": 19.99, "images": [],
                                  "videos": [], "store": "Store", "categories": ["Video Games", "Games"],
                                  "details": {}, "parent_asin": f"B{item:09d}", "bought_together": None}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--plain", action="store_true", help="write plain .jsonl instead of .jsonl.gz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw_dir = Path(tmp, "raw")
        raw_dir.mkdir()
        os.environ["SEQREC_HOME"] = str(Path(tmp, "home"))
        started = time.perf_counter()
        generate(raw_dir, args.reviews, args.plain)
        generated = time.perf_counter() - started
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:.0f} MiB" for p in sorted(raw_dir.iterdir()))
        print(f"generated {args.reviews:,} reviews in {generated:.1f} s ({sizes})")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        from seqrec.data.prepare import prepare_amazon2023

        started = time.perf_counter()
        row = prepare_amazon2023([CATEGORY], raw_dir=raw_dir, name="bench")
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stats = row.stats
        print(f"prepared: {stats['users']:,} users, {stats['items']:,} items, {stats['interactions']:,} interactions "
              f"after 5-core (dropped {stats['dropped']})")
        print(f"prepare: {elapsed:.1f} s, {args.reviews / elapsed:,.0f} reviews/s")
        print(f"peak RSS: {peak:,.0f} MiB (before prepare: {rss_before:,.0f} MiB; target < 2,048 MiB)")


if __name__ == "__main__":
    main()
