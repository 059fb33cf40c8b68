"""LLM backends on this machine: endpoint concurrency, the call cache, local score / generate, `seqrec serve`.

    python benchmarks/llm_backends.py [endpoint] [cache] [local] [serve] [--model smollm2-135m-instruct] [--threads N]

endpoint  the openai backend against a stand-in server that answers after a fixed 200 ms: 16 requests in flight
          against one at a time (target: at least 12x the throughput).
cache     the same batch sent twice through the llm_call table: fresh, then answered from it (target: 100x).
local     ``score`` of re-ranking prompts in prompt tokens per second against the measured matmul limit (target:
          30% in bf16), and batched greedy ``generate`` against a one-prompt-at-a-time loop (target: 5x).
serve     `seqrec serve` with the model: requests per second and latency with 1 and with 8 concurrent clients.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # the GEMM probe and the test servers are reused here

from embed_throughput import gemm_rate
from llm_servers import scripted_server, seqrec_serve

from seqrec.llm.backends import CachedLLM, Decoding
from seqrec.llm.backends.openai_api import OpenAIBackend
from seqrec.llm.prompts import render_prompt

HI = [{"role": "user", "content": "Rank these items."}]
WORDS = "the a of love night man story last day war city dark king lost return secret big star".split()


def title(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))).title() + f" ({rng.randint(1930, 1998)})"


def rerank_prompts(count: int, seed: int = 0) -> list[str]:
    """Re-ranking prompts of MovieLens shape: ten history titles, five candidates."""
    rng = random.Random(seed)
    labels = [str(number) for number in range(1, 6)]
    return [render_prompt("rerank", history=[title(rng) for _ in range(10)], candidates=[title(rng) for _ in range(5)],
                          labels=labels, mode="logprobs", top_k=5) for _ in range(count)]


def endpoint_benchmark(requests: int = 64) -> None:
    with scripted_server(delay=0.2) as server:
        rates = {}
        for concurrency in (1, 16):
            backend = OpenAIBackend(server.url, "m", max_concurrency=concurrency)
            count = 16 if concurrency == 1 else requests
            started = time.perf_counter()
            results = backend.generate([HI] * count, Decoding(max_tokens=8))
            rates[concurrency] = count / (time.perf_counter() - started)
            assert all(result.text == "ok" for result in results)
        print(f"endpoint (200 ms per answer): sequential {rates[1]:.1f} req/s, 16 in flight {rates[16]:.1f} req/s "
              f"= {rates[16] / rates[1]:.1f}x (target 12x)")


def cache_benchmark(requests: int = 200) -> None:
    prompts = [[{"role": "user", "content": f"Rank the candidates for user {user}."}] for user in range(requests)]
    with scripted_server(delay=0.2) as server:
        llm = CachedLLM(OpenAIBackend(server.url, "m", max_concurrency=16))
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            llm.generate(prompts, Decoding(max_tokens=8))
            timings.append(time.perf_counter() - started)
    print(f"cache ({requests} requests, 16 in flight): fresh {timings[0]:.2f} s, from the table "
          f"{timings[1] * 1000:.1f} ms = {timings[0] / timings[1]:.0f}x (target 100x); "
          f"hits {llm.counts.hits}, fresh {llm.counts.fresh}")


def local_benchmark(model: str, score_prompts: int = 32, generate_prompts: int = 16, new_tokens: int = 16) -> None:
    from seqrec.llm.backends.local import LocalBackend
    from seqrec.llm.embed import bf16_supported

    prompts = rerank_prompts(score_prompts)
    labels = [str(number) for number in range(1, 6)]
    for dtype in ["float32"] + (["bfloat16"] if bf16_supported() else []):
        backend = LocalBackend(model, dtype=dtype, batch_size=16)
        parameters = sum(p.numel() for p in backend.model.parameters())
        flops_per_token = 2 * (parameters - backend.model.get_input_embeddings().weight.numel())
        limit = gemm_rate(getattr(torch, dtype)) / flops_per_token
        backend.score(prompts[:4], labels)  # warm-up
        started = time.perf_counter()
        scores = backend.score(prompts, labels)
        rate = sum(score.prompt_tokens for score in scores) / (time.perf_counter() - started)
        print(f"local score {dtype}: {len(prompts)} prompts of {scores[0].prompt_tokens} tokens, {rate:,.0f} prompt "
              f"tokens/s = {rate / limit:.0%} of the matmul limit {limit:,.0f} tokens/s (target 30% in bf16)")
        texts = [f"Recommend one movie like {title(random.Random(index))}." for index in range(generate_prompts)]
        decoding = Decoding(max_tokens=new_tokens)
        started = time.perf_counter()
        batched = backend.generate(texts, decoding)
        batched_rate = sum(g.completion_tokens for g in batched) / (time.perf_counter() - started)
        started = time.perf_counter()
        looped = [backend.generate([text], decoding)[0] for text in texts]
        looped_rate = sum(g.completion_tokens for g in looped) / (time.perf_counter() - started)
        same = sum(a.text == b.text for a, b in zip(batched, looped))
        print(f"local generate {dtype}: {generate_prompts} prompts x {new_tokens} new tokens, batched "
              f"{batched_rate:,.0f} tokens/s, one at a time {looped_rate:,.0f} tokens/s = "
              f"{batched_rate / looped_rate:.1f}x (target 5x); {same}/{len(texts)} texts identical")


def serve_benchmark(model: str, requests: int = 16, new_tokens: int = 16) -> None:
    import openai

    with tempfile.TemporaryDirectory() as home, seqrec_serve(Path(model), Path(home), served_name="served",
                                                             dtype="auto") as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)

        def ask(index: int) -> float:
            started = time.perf_counter()
            client.chat.completions.create(model="served", max_tokens=new_tokens, temperature=0, messages=[
                {"role": "user", "content": f"Recommend one movie like {title(random.Random(index))}."}])
            return time.perf_counter() - started

        ask(0)  # warm-up
        for clients in (1, 8):
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                latencies = list(pool.map(ask, range(requests)))
            elapsed = time.perf_counter() - started
            print(f"serve, {clients} client(s), {requests} chat requests x {new_tokens} tokens: "
                  f"{requests / elapsed:.2f} req/s, latency median {statistics.median(latencies):.2f} s, "
                  f"max {max(latencies):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", default=["endpoint", "cache", "local", "serve"])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=None,
                        help="Torch threads here and in the server (on a shared machine 1 beats a contended 2).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the `seqrec serve` process
    print(f"{torch.get_num_threads()} threads")
    if "endpoint" in args.parts:
        endpoint_benchmark()
    if "cache" in args.parts:
        cache_benchmark()
    model = None
    if {"local", "serve"} & set(args.parts):
        from seqrec.llm.registry import model_record

        model = model_record(args.model).path
    if "local" in args.parts:
        local_benchmark(model)
    if "serve" in args.parts:
        serve_benchmark(model)


if __name__ == "__main__":
    main()
