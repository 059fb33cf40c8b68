"""DELRec on a registry LLM (default SmolLM2-135M-Instruct): milliseconds per request with the shared-prefix
verbalizer against scoring each candidate's full prompt separately, and stage-1 training throughput.

    python benchmarks/delrec_speed.py [--model smollm2-135m-instruct] [--threads 2]

Prompts are the paper's size: 10 history titles, 15 candidates, a 100-vector soft prompt. Titles are synthetic
("Dark River Story (1994)"), so no dataset is needed.
"""

from __future__ import annotations

import argparse
import time

import torch


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
    from seqrec.methods.delrec import (SOFT_PROMPT_MARK, DELRecModel, PromptBuilder, PromptSet, load_llm,
                                       random_soft_prompt, title_table)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    llm, tokenizer = load_llm(model_record(arguments.model).path)
    titles = [""] + training_strings(40 * arguments.batch, seed=1)
    pad = pad_token_id(tokenizer)
    builder = PromptBuilder(titles, tokenizer, "SASRec", "movie", SOFT_PROMPT_MARK, 100, seed=0)
    prompts = [(builder.recommendation(list(range(1 + 25 * row, 11 + 25 * row)), 11 + 25 * row,
                                       list(range(12 + 25 * row, 26 + 25 * row))),) for row in range(arguments.batch)]
    model = DELRecModel(llm, random_soft_prompt(llm, 100, 0), title_table(tokenizer, titles, 32, pad), "title",
                        train_soft_prompt=True).eval()
    prompt_set = PromptSet(prompts, pad)
    one = prompt_set.collate([prompts[0]])

    def separately() -> None:
        prompt = prompts[0][0]
        ids = torch.tensor(prompt.ids)
        soft_index = torch.where(ids < 0, torch.cumsum(ids < 0, 0) - 1, -1)
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
    parameters = sum(parameter.numel() for parameter in llm.parameters())
    tokens = sum(len(prompt.ids) for (prompt,) in prompts) + int(model.title_lengths[batch[3]].sum())
    model.train()
    for precision in ("fp32", "bf16"):
        def step(precision: str = precision) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model(*batch)
            loss.backward()

        seconds = timed(step, 1)
        print(f"stage-1 step ({precision}, batch {arguments.batch}): {seconds:.2f} s, {tokens / seconds:.0f} tokens/s, "
              f"{6 * parameters * tokens / seconds / 1e9:.1f} GFLOP/s at 6 FLOPs per parameter per token")


if __name__ == "__main__":
    main()
