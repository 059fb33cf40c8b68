"""`seqrec profiles`: LLM-written user profiles (generate, show) and their embeddings (embed)."""

from typing import Optional

import typer

from seqrec.cli._app import command_group, console
from seqrec.llm.backends.options import LLMOptions
from seqrec.training.options import cli_options, resolve

app = command_group("User profiles written by an LLM from training interactions, and their embeddings.")


@app.command()
@cli_options(LLMOptions)
def generate(
    dataset: str = typer.Option(..., help="A prepared dataset (see `seqrec data list`)."),
    prompt: str = typer.Option("short", help="short (structured, with percentages) or long (five paragraphs)."),
    strategy: str = typer.Option("agg_after", help="A history too long for the context: agg_after (profile each "
                                 "part, then merge) or agg_with (profile the first part, update with each next)."),
    max_tokens: int = typer.Option(512, help="Most tokens per generated profile."),
    temperature: float = typer.Option(0.7, help="Sampling temperature (0: greedy)."),
    seed: int = typer.Option(0, help="Sampling seed (a fixed seed makes the call cache answer repeats)."),
    users: Optional[int] = typer.Option(None, help="Profile only the first N training users."),
    max_items: Optional[int] = typer.Option(None, help="Profile each user from their N most recent training "
                                            "interactions (default: all of them, as the paper)."),
    context_length: Optional[int] = typer.Option(None, help="Fit prompts into this many tokens (an endpoint needs "
                                                 "it; default for a local model: its own context)."),
    tokenizer: Optional[str] = typer.Option(None, help="A registry model whose tokenizer counts an endpoint's "
                                            "tokens (default: an estimate from the text's length)."),
    batch_size: int = typer.Option(16, help="Local model: prompts per padded batch."),
    experiment: Optional[str] = typer.Option(None, help="Tag the run with an experiment name."),
    **llm_options,
) -> None:
    """Write one profile per training user (by an instruct model: --llm, or --endpoint); an identical earlier request is reused, an interrupted one resumes."""
    from seqrec.methods.profiles import generate_profiles

    llm = resolve("seqrec profiles generate", llm_options, LLMOptions)[0]
    result = generate_profiles(dataset, llm, prompt=prompt, strategy=strategy, max_tokens=max_tokens,
                               temperature=temperature, seed=seed, users=users, max_items=max_items,
                               context_length=context_length, tokenizer=tokenizer, batch_size=batch_size,
                               experiment=experiment)
    state = "reused from" if result.cached else "written by"
    console.print(f"profiles {result.path} ({state} run {result.run_id}); embed them with `seqrec profiles embed "
                  f"--profiles run:{result.run_id}`", highlight=False, soft_wrap=True)


@app.command()
def show(
    run: str = typer.Argument(..., help="A profiles run: ID or run:ID."),
    user: int = typer.Option(..., help="The user id (as in the prepared dataset)."),
) -> None:
    """Print one user's profile."""
    from seqrec.methods.profiles import show_profile

    console.print(show_profile(run, user), highlight=False, markup=False, soft_wrap=True)


@app.command()
def embed(
    profiles: str = typer.Option(..., help="A profiles run: ID or run:ID."),
    encoder: str = typer.Option("e5-large", help="A sentence encoder from the registry (offline: all-minilm-l6-v2)."),
    reduce: str = typer.Option("umap:128", help="none, umap:N or pca:N; fitted on the training users, seeded."),
    seed: int = typer.Option(0, help="The reducer's seed."),
    e5_prefix: str = typer.Option("query", help="E5 encoders: the prefix before each profile (query or passage)."),
    max_length: int = typer.Option(512, help="Longest profile in tokens; longer ones are truncated."),
    batch_size: int = typer.Option(32, help="Profiles per forward pass."),
    experiment: Optional[str] = typer.Option(None, help="Tag the run with an experiment name."),
) -> None:
    """Embed every profile into a user embedding matrix; distil it with `seqrec train ... --profiles run:ID`."""
    from seqrec.methods.profiles import embed_profiles

    result = embed_profiles(profiles, encoder, reduce=reduce, seed=seed, batch_size=batch_size,
                            max_length=max_length, e5_prefix=e5_prefix, experiment=experiment)
    if result.note:
        console.print(f"note: {result.note}", highlight=False, soft_wrap=True)
    state = "reused from" if result.cached else "written by"
    console.print(f"user embeddings {result.path} ({state} run {result.run_id}); distil them with `seqrec train "
                  f"sasrec --profiles run:{result.run_id}`", highlight=False, soft_wrap=True)
