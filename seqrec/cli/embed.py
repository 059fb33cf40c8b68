"""`seqrec embed`: item embeddings from text encoders and LLMs."""

from typing import Optional

import typer

from seqrec.cli._app import command_group, console
from seqrec.llm.configs import EmbedConfig, LLM2RecConfig, LLM2RecTraining
from seqrec.training.options import cli_options

app = command_group("Item embeddings from text encoders and LLMs.")


@app.command()
@cli_options(EmbedConfig)
def items(
    model: str = typer.Option(..., help="A registry alias, a pulled model, a Hugging Face id or a local folder."),
    dataset: str = typer.Option(..., help="A prepared dataset (see `seqrec data list`)."),
    **options,
) -> None:
    """Embed every item's text; an identical earlier request is reused, not recomputed."""
    from seqrec.llm.embed import embed_items

    result = embed_items(model, dataset, **options)
    state = "reused from" if result.cached else "written by"
    console.print(f"item embeddings {result.path} ({state} run {result.run_id}); train on them with "
                  f"`seqrec train sasrec --dataset {dataset} --item-emb run:{result.run_id}`", highlight=False,
                  soft_wrap=True)


@app.command()
@cli_options(LLM2RecConfig, LLM2RecTraining, exclude=("metric",))
def train(
    model: str = typer.Option(..., help="The LLM to train: an alias, a folder, or run:ID (an earlier stage's model)."),
    dataset: Optional[str] = typer.Option(None, help="A prepared dataset (its training sequences and titles)."),
    stage: str = typer.Option(..., help="csft (history titles -> next title), mntp (masked next-token, "
                              "bidirectional), ic (item contrastive L_IC) or iem (mntp, then ic)."),
    seed: int = typer.Option(0, help="Seed of example sampling, batch order, masks and dropout."),
    resume: Optional[int] = typer.Option(None, help="Continue an interrupted stage from its checkpoint."),
    experiment: Optional[str] = typer.Option(None, help="Tag the runs with an experiment name."),
    **options,
) -> None:
    """Train an LLM into an item embedder, LLM2Rec's way: csft, then iem (mntp + ic); each stage is a run."""
    from seqrec.llm.llm2rec import train_embedder

    if dataset is None and resume is None:
        raise typer.BadParameter("give --dataset (or --resume RUN)", param_hint="--dataset")
    for run_id in filter(None, train_embedder(model, dataset, stage, seed=seed, resume=resume, experiment=experiment,
                                              **options)):
        console.print(f"LLM2Rec run {run_id}: continue from it with --model run:{run_id}", highlight=False)
