"""`seqrec rerank`: an LLM re-orders a trained recommender's top K (the first paper's post-hoc re-ranking)."""

from typing import Optional

import typer

from seqrec.cli._app import console
from seqrec.llm.backends.options import LLMOptions
from seqrec.training.options import cli_options, resolve


@cli_options(LLMOptions)
def rerank(
    run: str = typer.Argument(..., help="A finished training run (ID or run:ID): the base model."),
    noise: str = typer.Option("none", help="none, deletion or deletion:RATE (the same seeded deletion as `seqrec "
                              "evaluate --noise`)."),
    split: str = typer.Option("test", help="test or valid."),
    top_k: int = typer.Option(20, help="How many of the base model's best items the LLM re-orders."),
    mode: str = typer.Option("logprobs", help="logprobs (the labels' next-token log-probabilities, one forward "
                             "pass) or generate (the model writes an ordering, parsed strictly)."),
    permutations: int = typer.Option(1, help="Candidate orders per user, each its own seeded shuffle; scores are "
                                     "averaged (mean log-prob, or Borda for generate)."),
    alpha: float = typer.Option(1.0, help="Weight of the LLM's score against the base model's (1: the LLM alone)."),
    users: Optional[int] = typer.Option(None, help="Re-rank a fixed seeded sample of N users (default: all)."),
    labels: Optional[str] = typer.Option(None, help="letters, numbers, or a comma-separated list (default: letters "
                                         "for logprobs, numbers for generate)."),
    template: str = typer.Option("rerank", help="A shipped prompt template or a .jinja file."),
    max_tokens: Optional[int] = typer.Option(None, help="generate: most tokens per answer (default 4 K + 8)."),
    seed: int = typer.Option(0, help="Seed of the candidate permutations."),
    batch_size: int = typer.Option(16, help="Local model: prompts per padded batch."),
    experiment: Optional[str] = typer.Option(None, help="Tag the run with an experiment name."),
    **llm_options,
) -> None:
    """Re-rank a trained model's top K with an LLM; prints re-ranked and base R@10/20, N@10/20 on the same users."""
    from seqrec.methods.rerank import rerank as rerank_base

    llm = resolve("seqrec rerank", llm_options, LLMOptions)[0]
    result = rerank_base(run, llm, noise=noise, split=split, top_k=top_k, mode=mode, permutations=permutations,
                         alpha=alpha, users=users, labels=labels, template=template, max_tokens=max_tokens, seed=seed,
                         batch_size=batch_size, experiment=experiment)
    keys = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
    console.print("           " + "  ".join(f"{key:>9}" for key in keys), highlight=False)
    for name, values in (("re-ranked", result.metrics), ("base", result.base)):
        console.print(f"{name:<10} " + "  ".join(f"{values.get(key, float('nan')):9.4f}" for key in keys),
                      highlight=False)
    counts = result.counts
    state = "reused from" if result.cached else "written by"
    console.print(f"{int(counts.get('users', 0))} users; answers parsed {int(counts.get('parsed', 0))}, repaired "
                  f"{int(counts.get('repaired', 0))}, fallen back {int(counts.get('fallback', 0))}; rankings "
                  f"{result.path} ({state} run {result.run_id})", highlight=False, soft_wrap=True)
