"""The wall time of a declared DELRec study, estimated from timed pieces: one scoring batch and one training step of
each prompt kind (TA, RPS, LSR) at the study's sizes, multiplied by how many prompts each of its runs scores and
trains on.

    python benchmarks/delrec_study_time.py [--study delrec-cpu] [--file experiments.toml] [--threads 2]

Needs the study's dataset prepared and its LLM pulled (`seqrec run delrec-baselines-data`, `seqrec models pull`).
Each piece is timed once, in wall seconds and in this process's CPU seconds; on a machine shared with other work the CPU
seconds divided by the threads estimate what the idle machine would take. The conventional models' training is
not included (see time_to_model.py).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import numpy as np
import torch


def timed(function) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def prompts_of(stage: str, params: dict, test_rows: int) -> dict[str, int]:
    """Prompts a run scores ("score": validation before training and after each epoch, and test) and trains on."""
    epochs = params.get("epochs", 1)
    if stage == "delrec-distill":
        tasks = 2 - (params.get("ablation") in ("wo_ta", "wo_rps"))
        return {"score": tasks * params.get("valid_examples", 200) * (epochs + 1),
                "train": tasks * params["max_examples"] * epochs}
    return {"score": params.get("valid_examples", 200) * (epochs + 1) + (params.get("test_examples") or test_rows),
            "train": params["max_examples"] * epochs}


def main() -> None:
    from seqrec.data.prepare import load_dataset
    from seqrec.experiments.grid import expand
    from seqrec.experiments.plan import load_plan
    from seqrec.llm.embed import pad_token_id
    from seqrec.llm.registry import model_record
    from seqrec.methods.delrec import (SOFT_PROMPT_MARK, DELRecModel, PromptBuilder, PromptSet, attention_targets,
                                       load_llm, random_soft_prompt, title_table, training_prefixes, window_of)
    from seqrec.training.lora import add_adalora

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="delrec-cpu")
    parser.add_argument("--file", default="experiments.toml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=2, help="Prompts per timed batch, of each kind.")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    plan = load_plan(arguments.study, arguments.file)
    points = [(plan.spec.experiments[name], point) for name in plan.order
              for point in expand(plan.spec.experiments[name])
              if plan.spec.experiments[name].stage in ("delrec-distill", "delrec-finetune")]
    first = next(experiment for experiment, _ in points if experiment.stage == "delrec-distill")
    sizes = next(point for experiment, point in points if experiment is first)
    data = load_dataset(first.dataset)
    llm, tokenizer = load_llm(model_record(plan.spec.models[first.model].alias).path)
    soft_tokens = sizes.get("soft_tokens", 100)
    builder = PromptBuilder(data.titles(), tokenizer, "SASRec", sizes.get("item_word", "item"), SOFT_PROMPT_MARK,
                            soft_tokens, seed=0, chat=sizes.get("prompt_format") == "chat")
    rng = np.random.default_rng(0)
    _, histories, targets = training_prefixes(data, arguments.prompts, seed=0, min_length=4)
    windows = [window_of(history, sizes.get("history", 10)) for history in histories]
    negatives = [rng.choice(np.arange(1, data.num_items + 1), 14, replace=False).tolist() for _ in windows]
    kinds = {
        "ta": [builder.temporal_analysis(w, int(t), n, sizes.get("icl_examples", 4)) for w, t, n in
               zip(windows, targets, negatives)],
        "rps": [builder.pattern_simulating(w, n[:10], n[10:] + n[:4]) for w, n in zip(windows, negatives)],
        "lsr": [builder.recommendation(w, int(t), n) for w, t, n in zip(windows, targets, negatives)],
    }
    pad = pad_token_id(tokenizer)
    titles = title_table(tokenizer, data.titles(), sizes.get("title_tokens", 32), pad)
    soft = random_soft_prompt(llm, soft_tokens, 0)
    stage1 = DELRecModel(llm, soft, titles, "title", train_soft_prompt=True)
    per_prompt: dict[str, tuple[float, float]] = {}
    warm = PromptSet([(kinds["lsr"][0],)], pad).collate([(kinds["lsr"][0],)])
    with torch.inference_mode():
        stage1.scores(*warm[:4])  # first-call costs (allocations, kernel selection) stay out of the pieces
    for kind, prompts in kinds.items():
        batch = PromptSet([(prompt,) for prompt in prompts], pad).collate([(prompt,) for prompt in prompts])
        if kind == "lsr":  # stage 2 trains AdaLoRA adapters on q/v, the soft prompt frozen
            stage1 = DELRecModel(add_adalora(llm, 100, attention_targets(llm)), soft, titles, "title",
                                 train_soft_prompt=False)
        with torch.inference_mode():
            score = timed(lambda: stage1.scores(*batch[:4]))
        train = timed(lambda: stage1(*batch).backward())
        per_prompt[f"{kind} score"] = tuple(value / len(prompts) for value in score)
        per_prompt[f"{kind} train"] = tuple(value / len(prompts) for value in train)
        tokens = sum(len(prompt.ids) for prompt in prompts) / len(prompts)
        print(f"{kind}: {tokens:.0f} prompt tokens; per prompt, scoring {per_prompt[f'{kind} score'][0]:.2f} s wall "
              f"/ {per_prompt[f'{kind} score'][1]:.2f} s CPU, a training step {per_prompt[f'{kind} train'][0]:.2f} s "
              f"wall / {per_prompt[f'{kind} train'][1]:.2f} s CPU")
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for experiment, point in points:
        counts = prompts_of(experiment.stage, point, len(data.test))
        if experiment.stage == "delrec-distill":
            kinds_used = [kind for kind in ("ta", "rps") if point.get("ablation") != f"wo_{kind}"]
        else:
            kinds_used = ["lsr"]
        for what, count in counts.items():
            for kind in kinds_used:
                share = count / len(kinds_used)
                totals[experiment.stage][0] += share * per_prompt[f"{kind} {what}"][0]
                totals[experiment.stage][1] += share * per_prompt[f"{kind} {what}"][1]
        totals[experiment.stage][2] += 1
    for stage, (wall, cpu, runs) in totals.items():
        print(f"{stage}: {runs} runs, {wall / 3600:.1f} h at this load, {cpu / arguments.threads / 3600:.1f} h on "
              f"{arguments.threads} idle cores ({cpu / runs / arguments.threads / 60:.0f} min per run)")
    wall = sum(total[0] for total in totals.values())
    cpu = sum(total[1] for total in totals.values())
    print(f"{arguments.study}: {wall / 3600:.1f} h at load {os.getloadavg()[0]:.1f}, "
          f"{cpu / arguments.threads / 3600:.1f} h on {arguments.threads} idle cores, plus model loading and the "
          "conventional models")


if __name__ == "__main__":
    main()
