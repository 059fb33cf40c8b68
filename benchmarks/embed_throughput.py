"""Item-embedding throughput of a real LLM on this machine, against its matmul limit.

    python benchmarks/embed_throughput.py [--model smollm2-135m-instruct] [--dataset ml-100k]

Embeds item titles (a prepared dataset's, else synthetic titles of MovieLens length) with the batched,
length-sorted path of ``seqrec embed items`` and with a one-title-at-a-time loop, in fp32 and (where the CPU has
native bf16) bf16. The limit is the measured GEMM rate divided by 2 x non-embedding parameters FLOPs per token.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from seqrec.errors import SeqrecError
from seqrec.llm.embed import bf16_supported, encode_batches, pad_token_id, prepare_encoder, tokenize
from seqrec.llm.registry import model_record
from seqrec.store import open_store


def gemm_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """Best-of FLOP/s of a square matmul: the most this machine's matmul kernels deliver."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def titles(dataset: str, count: int) -> tuple[list[str], str]:
    from seqrec.data.prepare import load_dataset

    if open_store().get_dataset(dataset) is not None:
        return load_dataset(dataset).titles()[1:], f"{dataset} titles"
    rng = random.Random(0)
    words = "the a of love night man story last day war city dark king lost return secret big star".split()
    synthetic = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 5))).title() + f" ({rng.randint(1930, 1998)})"
                 for _ in range(count)]
    return synthetic, f"{count} synthetic titles (no prepared {dataset!r})"


def tokens_per_second(model, token_ids, pad_id, batch_size) -> float:
    started = time.perf_counter()
    encode_batches(model, token_ids, pad_id=pad_id, pooling="mean", batch_size=batch_size)
    return sum(map(len, token_ids)) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--loop-titles", type=int, default=200, help="Titles for the one-at-a-time loop.")
    args = parser.parse_args()

    texts, origin = titles(args.dataset, 1682)
    record = model_record(args.model)
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16_supported() else [])
    print(f"model {record.alias}; {origin}; {torch.get_num_threads()} threads")
    for dtype in dtypes:
        model, tokenizer = prepare_encoder(record.path, "causal", bf16=dtype is torch.bfloat16)
        embedding_params = model.get_input_embeddings().weight.numel()
        flops_per_token = 2 * (sum(p.numel() for p in model.parameters()) - embedding_params)
        token_ids = tokenize(tokenizer, texts, "mean", max_length=64)
        pad_id = pad_token_id(tokenizer)
        encode_batches(model, token_ids[:64], pad_id=pad_id, pooling="mean", batch_size=args.batch_size)  # warm-up
        batched = tokens_per_second(model, token_ids, pad_id, args.batch_size)
        looped = tokens_per_second(model, token_ids[:args.loop_titles], pad_id, 1)
        limit = gemm_rate(dtype) / flops_per_token
        name = str(dtype).removeprefix("torch.")
        print(f"{name:>8}: {len(token_ids)} titles, {sum(map(len, token_ids)) / len(token_ids):.1f} tokens each; "
              f"{flops_per_token / 1e6:.0f} MFLOP/token; GEMM {gemm_rate(dtype) / 1e9:.0f} GFLOP/s "
              f"-> limit {limit:,.0f} tokens/s")
        print(f"{'':>8}  batched (batch {args.batch_size}) {batched:,.0f} tokens/s = {batched / limit:.0%} of the "
              f"limit; one at a time {looped:,.0f} tokens/s; batched/loop {batched / looped:.1f}x")


if __name__ == "__main__":
    try:
        main()
    except SeqrecError as exc:
        raise SystemExit(f"error: {exc}") from None
