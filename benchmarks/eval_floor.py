"""How fast can one full-ranking evaluation of SASRec be on this machine? Its matrix products set a floor.

    .venv/bin/python benchmarks/eval_floor.py --dataset ml-100k-chronological
    .venv/bin/python benchmarks/eval_floor.py --dataset ml-1m-chronological --recbole-seconds 0.38

Times one validation pass of seqrec's ``Evaluator`` (the benchmark's model: hidden 64, 2 layers, 2 heads, post-norm,
untrained weights; an evaluation costs the same whatever the weights), then the same pass's pieces replayed alone on
random tensors of the shapes it used: every ``F.linear`` product (the ``nn.Linear`` layers' and the fused query, key
and value product), the first block's two batched attention products (keys x queries, then weights x values; the
last block's products for its single query per history, outside its linear layers, are small and not replayed)
and the scoring product against the whole catalogue (in the orientation ``SequentialRecommender.scores`` uses on
CPUs). Their sum is what an implementation that spent nothing on anything else (embedding lookups, LayerNorm,
GELU, ranking, metrics) would still pay; ``--recbole-seconds`` prints which speed-up over RecBole that floor
allows. The datasets are the ones ``recbole_compare.py`` prepares (it must have run once with the same ``--home``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def median_seconds(work, repeats: int) -> float:
    work()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k-chronological")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--recbole-seconds", type=float, help="RecBole's measured seconds per evaluation")
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "seqrec-recbole-bench"))
    args = parser.parse_args()
    os.environ["SEQREC_HOME"] = args.home

    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator

    from seqrec.data.prepare import get_dataset, load_dataset
    from seqrec.recsys.allocator import keep_freed_memory
    from seqrec.recsys.evaluate import Evaluator
    from seqrec.recsys.models.sasrec import SASRec, SASRecConfig, SelfAttention

    keep_freed_memory()
    data = load_dataset(args.dataset)
    torch.manual_seed(0)
    model = SASRec(data.num_items, SASRecConfig(hidden=64, layers=2, heads=2, dropout=0.2, max_len=data.max_len,
                                                norm="post"))
    accelerator = Accelerator(cpu=True)
    evaluator = Evaluator(data, "valid", data_folder=Path(get_dataset(args.dataset).path))
    whole = median_seconds(lambda: evaluator.evaluate(model, accelerator), args.repeats)

    linear_shapes, attention_shapes = [], []
    linear = F.linear

    def recording_linear(x, weight, bias=None):
        linear_shapes.append((x.shape, weight.detach()))
        return linear(x, weight, bias)

    def record_attention(module, inputs):
        (batch, positions, hidden), newest_only = inputs[0].shape, inputs[2]  # TransformerBlock passes all three
        if not newest_only:  # [batch, heads, positions, head size] of the queries, keys and values
            attention_shapes.append((batch, module.heads, positions, hidden // module.heads))

    hooks = [module.register_forward_pre_hook(record_attention) for module in model.modules()
             if isinstance(module, SelfAttention)]
    F.linear = recording_linear
    try:
        evaluator.evaluate(model, accelerator)
    finally:
        F.linear = linear
        for hook in hooks:
            hook.remove()

    inputs = [(torch.randn(shape), weight) for shape, weight in linear_shapes]
    attention = [(torch.randn(shape), torch.randn(shape), torch.randn(shape)) for shape in attention_shapes]
    table = model.output_items().detach()
    states = torch.randn(len(evaluator.targets), table.shape[1])
    with torch.inference_mode():
        products = median_seconds(lambda: [linear(x, weight) for x, weight in inputs], args.repeats)
        attending = median_seconds(lambda: [(k @ q.transpose(-1, -2)).transpose(-1, -2) @ v for q, k, v in attention],
                                   args.repeats)
        scoring = median_seconds(lambda: [(table @ states[start:start + evaluator.batch_size].T).T
                                          for start in range(0, len(states), evaluator.batch_size)], args.repeats)
    floor = products + attending + scoring
    print(f"{args.dataset}: {len(states)} users, {table.shape[0] - 1} items, torch threads {torch.get_num_threads()}")
    print(f"  one evaluation (seqrec Evaluator)         {whole * 1000:8.1f} ms")
    print(f"  its linear layers' products alone         {products * 1000:8.1f} ms")
    print(f"  its attention products alone              {attending * 1000:8.1f} ms")
    print(f"  scoring every item alone                  {scoring * 1000:8.1f} ms")
    print(f"  floor (products + attention + scoring)    {floor * 1000:8.1f} ms = {floor / whole:.0%} of the pass")
    if args.recbole_seconds:
        print(f"  RecBole {args.recbole_seconds * 1000:.1f} ms: seqrec is {args.recbole_seconds / whole:.2f}x faster; "
              f"the floor allows at most {args.recbole_seconds / floor:.2f}x")


if __name__ == "__main__":
    main()
