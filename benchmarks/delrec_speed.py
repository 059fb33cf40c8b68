"""DELRec on a registry LLM (default SmolLM2-135M-Instruct): milliseconds per request with the shared-prefix
verbalizer against scoring each candidate's full prompt separately, and stage-1 and stage-2 training throughput in
tokens per second against this machine's matmul limit (forward + backward = 6 FLOPs per parameter per token).

    python benchmarks/delrec_speed.py [--model smollm2-135m-instruct] [--threads 2] [--batch 8] [--soft-tokens 100]

Prompts are the paper's size: 10 history titles, 15 candidates, a 100-vector soft prompt. Titles are synthetic
("Dark River Story (1994)"), so no dataset is needed. ``--model`` also takes a model folder (a tiny one checks the
script in seconds). Stage 1 trains the soft prompt alone; stage 2 trains AdaLoRA adapters on q/v with the soft
prompt frozen. The limit is the best square-matmul rate of the precision over 6 x the parameters outside the token
embedding table.
"""

from __future__ import annotations

import argparse
import time

import torch
from embed_throughput import gemm_rate


def timed(function, repeats: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    from seqrec.llm.embed import pad_token_id
    from seqrec.llm.registry import model_record
    from seqrec.llm.tiny import training_strings
    from seqrec.methods.delrec import (SOFT_PROMPT_MARK, DELRecModel, PromptBuilder, PromptSet, attention_targets,
                                       load_llm, random_soft_prompt, title_table)
    from seqrec.training.lora import add_adalora

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--soft-tokens", type=int, default=100)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    llm, tokenizer = load_llm(model_record(arguments.model).path)
    titles = [""] + training_strings(40 * arguments.batch, seed=1)
    pad = pad_token_id(tokenizer)
    builder = PromptBuilder(titles, tokenizer, "SASRec", "movie", SOFT_PROMPT_MARK, arguments.soft_tokens, seed=0)
    prompts = [(builder.recommendation(list(range(1 + 25 * row, 11 + 25 * row)), 11 + 25 * row,
                                       list(range(12 + 25 * row, 26 + 25 * row))),) for row in range(arguments.batch)]
    soft_prompt = random_soft_prompt(llm, arguments.soft_tokens, 0)
    model = DELRecModel(llm, soft_prompt, title_table(tokenizer, titles, 32, pad), "title",
                        train_soft_prompt=True).eval()
    prompt_set = PromptSet(prompts, pad)
    one = prompt_set.collate([prompts[0]])

    def separately() -> None:
        prompt = prompts[0][0]
        ids = torch.tensor(prompt.ids)
        soft_index = torch.where(ids < 0, -1 - ids, -1)
        embeddings = model.input_embeddings(ids.clamp(min=0)[None], soft_index[None])[0]
        for item in prompt.candidates:
            title = model.title_ids[item, :model.title_lengths[item]]
            full = torch.cat([embeddings, llm.get_input_embeddings()(title)])[None]
            llm(inputs_embeds=full).logits[0, len(ids) - 1:].log_softmax(-1)

    with torch.inference_mode():
        shared = timed(lambda: model.scores(*one[:4]), 3)
        separate = timed(separately, 1)
    print(f"{arguments.model}, {len(prompts[0][0].ids)} prompt tokens, 15 candidates, {arguments.threads} threads: "
          f"{shared * 1000:.0f} ms per request with the shared prefix, {separate * 1000:.0f} ms scoring each full "
          f"prompt separately ({separate / shared:.1f}x)")
    batch = prompt_set.collate(prompts)
    tokens = sum(len(prompt.ids) for (prompt,) in prompts) + int(model.title_lengths[batch[3]].sum())
    weights = sum(parameter.numel() for parameter in llm.parameters()) - llm.get_input_embeddings().weight.numel()
    limits = {precision: gemm_rate(dtype) / (6 * weights) for precision, dtype in (("fp32", torch.float32),
                                                                                     ("bf16", torch.bfloat16))}
    training_rate("stage 1 (soft prompt)", model.train(), batch, tokens, limits, arguments.batch)
    adapted = add_adalora(llm, 100, attention_targets(llm))
    stage2 = DELRecModel(adapted, soft_prompt, title_table(tokenizer, titles, 32, pad), "title",
                         train_soft_prompt=False).train()
    training_rate("stage 2 (AdaLoRA, soft prompt frozen)", stage2, batch, tokens, limits, arguments.batch)


def training_rate(name: str, model, batch, tokens: int, limits: dict[str, float], size: int) -> None:
    """One forward + backward of ``batch`` in fp32 and bf16 autocast: tokens/s and its share of the matmul limit."""
    for precision, limit in limits.items():
        def step(precision: str = precision) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model(*batch)
            loss.backward()

        rate = tokens / timed(step, 1)
        print(f"{name} step ({precision}, batch {size}): {rate:.0f} tokens/s = {rate / limit:.0%} of the matmul limit "
              f"{limit:.0f} tokens/s (target 30% in bf16)")


if __name__ == "__main__":
    main()
