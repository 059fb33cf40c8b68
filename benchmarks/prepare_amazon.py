"""Prepare throughput and peak memory for Amazon Reviews 2023 on a generated category.

Generates ``Video_Games.jsonl.gz`` (default 1,000,000 reviews, every field of the release's review records) and
``meta_Video_Games.jsonl.gz`` in a temporary folder, then runs
``seqrec.data.prepare.prepare_amazon2023(["Video_Games"], raw_dir=..., name=...)`` with the default options
(5-core, leave-one-out, max length 10) in a fresh child process whose SEQREC_HOME is a temporary folder, and
prints reviews per second and that process's peak RSS (``ru_maxrss``). Target: under 2 GB.

    python benchmarks/prepare_amazon.py [--reviews 1000000] [--plain] [--keep DIR]

The child process measures only the prepare (imports included), not the generation.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CATEGORY = "Video_Games"
BLOCK = 50_000
PHRASES = ["Great game", "Fun with friends", "The controller broke", "Arrived late", "Worth the price",
           "My kids love it", "Graphics are amazing", "Not as described", "Five stars", "Would buy again"]


def writer(path: Path, plain: bool):
    if plain:
        return path.open("w", encoding="utf-8")
    return gzip.open(path, "wt", encoding="utf-8", compresslevel=1)


def generate(folder: Path, reviews: int, plain: bool, seed: int = 0) -> tuple[Path, Path]:
    """Long-tailed user and item popularity (a Zipf-like draw), timestamps in ms rising through the file with
    some exact repeats, a few repeated user-item pairs, and a meta record for every item."""
    rng = np.random.default_rng(seed)
    users, items = max(reviews // 6, 10), max(reviews // 25, 10)
    user_p = 1 / np.arange(1, users + 1) ** 0.7
    item_p = 1 / np.arange(1, items + 1) ** 0.85
    user_p, item_p = user_p / user_p.sum(), item_p / item_p.sum()
    suffix = ".jsonl" if plain else ".jsonl.gz"
    review_path, meta_path = folder / f"{CATEGORY}{suffix}", folder / f"meta_{CATEGORY}{suffix}"
    clock = 1_420_000_000_000
    with writer(review_path, plain) as out:
        for start in range(0, reviews, BLOCK):
            size = min(BLOCK, reviews - start)
            who = rng.choice(users, size, p=user_p)
            what = rng.choice(items, size, p=item_p)
            stars = rng.integers(1, 6, size)
            steps = rng.integers(0, 40_000, size)  # 0: the same millisecond as the row before
            times = clock + np.cumsum(steps)
            clock = int(times[-1])
            phrase = rng.integers(0, len(PHRASES), size)
            votes = rng.poisson(0.6, size)
            lines = []
            for user, item, rating, when, text, vote in zip(who.tolist(), what.tolist(), stars.tolist(),
                                                            times.tolist(), phrase.tolist(), votes.tolist()):
                asin = f"B{item:09d}"
                lines.append(json.dumps({
                    "rating": float(rating), "title": PHRASES[text], "text": PHRASES[text - 1] + ". " + PHRASES[text],
                    "images": [], "asin": asin, "parent_asin": asin, "user_id": f"AG{user:026d}", "timestamp": when,
                    "helpful_vote": vote, "verified_purchase": vote % 2 == 0}))
            out.write("\n".join(lines) + "\n")
    with writer(meta_path, plain) as out:
        for item in range(items):
            asin = f"B{item:09d}"
            out.write(json.dumps({
                "main_category": "Video Games", "title": f"Game {item} &amp; Controller Bundle",
                "average_rating": 4.1, "rating_number": 12, "features": ["Wireless", "Rechargeable battery"],
                "description": [f"Bundle number {item}."], "price": None if item % 4 == 0 else 29.99,
                "images": [{"thumb": f"https://example.invalid/{asin}.jpg", "large": None, "variant": "MAIN",
                            "hi_res": None}],
                "videos": [], "store": "Bench Games", "categories": ["Video Games", "Accessories"],
                "details": {"Release date": "June 1, 2020"}, "parent_asin": asin, "bought_together": None}) + "\n")
    return review_path, meta_path


def prepare_only(raw_dir: Path, home: Path) -> None:
    """The child process: prepare, then print one JSON line with the timings and the peak RSS."""
    os.environ["SEQREC_HOME"] = str(home)
    started = time.perf_counter()
    from seqrec.data.prepare import prepare_amazon2023

    imported = time.perf_counter()
    row = prepare_amazon2023([CATEGORY], raw_dir=raw_dir, name="bench-video-games")
    done = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"import_s": imported - started, "prepare_s": done - imported, "peak_kib": peak_kib,
                      "stats": row.stats}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--plain", action="store_true", help="write .jsonl instead of .jsonl.gz")
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it (reused when present)")
    parser.add_argument("--child", nargs=2, type=Path, metavar=("RAW_DIR", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        prepare_only(*args.child)
        return

    with tempfile.TemporaryDirectory(prefix="seqrec-bench-") as tmp:
        raw_dir = args.keep or Path(tmp, "raw")
        raw_dir.mkdir(parents=True, exist_ok=True)
        suffix = ".jsonl" if args.plain else ".jsonl.gz"
        if not (raw_dir / f"{CATEGORY}{suffix}").exists():
            started = time.perf_counter()
            generate(raw_dir, args.reviews, args.plain)
            print(f"generated {args.reviews:,} reviews in {time.perf_counter() - started:.1f} s")
        for path in sorted(raw_dir.iterdir()):
            print(f"  {path.name}: {path.stat().st_size / 2**20:,.1f} MiB")
        child = subprocess.run([sys.executable, __file__, "--child", str(raw_dir), str(Path(tmp, "home"))],
                               check=True, capture_output=True, text=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
    stats, seconds, peak = result["stats"], result["prepare_s"], result["peak_kib"] / 1024
    print(f"after 5-core: {stats['users']:,} users, {stats['items']:,} items, {stats['interactions']:,} "
          f"interactions; dropped {stats['dropped']}")
    print(f"prepare: {seconds:.1f} s for {args.reviews:,} reviews = {args.reviews / seconds:,.0f} rows/s "
          f"(imports {result['import_s']:.1f} s not counted)")
    print(f"peak RSS: {peak:,.0f} MiB (target < 2,048 MiB) -> {'OK' if peak < 2048 else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
