"""`seqrec delrec`: DELRec's two stages (distil a conventional model's pattern into a soft prompt; fine-tune)."""

from typing import Optional

import typer

from seqrec.cli._app import command_group, console
from seqrec.methods.delrec_options import DistillStageConfig, DistillTraining, FinetuneStageConfig, FinetuneTraining
from seqrec.training.options import cli_options

app = command_group("DELRec: distil a conventional recommender's pattern into a soft prompt, then fine-tune the LLM.")


@app.command()
@cli_options(DistillStageConfig, DistillTraining, exclude=("metric",))
def distill(
    model: Optional[str] = typer.Option(None, help="The LLM: an alias (smollm2-135m-instruct), a folder or run:ID."),
    dataset: Optional[str] = typer.Option(None, help="A prepared dataset (its training sequences and titles)."),
    teacher: Optional[int] = typer.Option(None, help="A finished `seqrec train` run (SASRec, GRU4Rec, Caser) on it."),
    seed: int = typer.Option(0, help="Seed of the soft prompt, prompt sampling and batch order."),
    resume: Optional[int] = typer.Option(None, help="Continue an interrupted distill run from its checkpoint."),
    experiment: Optional[str] = typer.Option(None, help="Tag the run with an experiment name."),
    **options,
) -> None:
    """Stage 1: train a soft prompt on Temporal Analysis and Recommendation Pattern Simulating, the LLM frozen."""
    from seqrec.methods.delrec import distill_pattern

    run_id = distill_pattern(model, dataset, teacher, seed=seed, resume=resume, experiment=experiment, **options)
    if run_id is not None:
        console.print(f"delrec distill run {run_id}: fine-tune with `seqrec delrec finetune --distilled {run_id}`",
                      highlight=False, soft_wrap=True)


@app.command()
@cli_options(FinetuneStageConfig, FinetuneTraining, exclude=("metric",))
def finetune(
    distilled: Optional[int] = typer.Option(None, help="The stage-1 run whose soft prompt is used (frozen)."),
    model: Optional[str] = typer.Option(None, help="The LLM (default: the distill run's)."),
    dataset: Optional[str] = typer.Option(None, help="The dataset (default: the distill run's)."),
    teacher: Optional[int] = typer.Option(None, help="The conventional model's train run (default: the distill "
                                          "run's; needed by wo_sp, w_mcp and w_usp)."),
    seed: int = typer.Option(0, help="Seed of adapters, prompt sampling, batch order and the stored candidate sets."),
    resume: Optional[int] = typer.Option(None, help="Continue an interrupted finetune run from its checkpoint."),
    experiment: Optional[str] = typer.Option(None, help="Tag the run with an experiment name."),
    **options,
) -> None:
    """Stage 2: fine-tune the LLM with AdaLoRA to pick the next item among the candidates; logs test metrics."""
    from seqrec.methods.delrec import finetune as finetune_llm

    run_id = finetune_llm(distilled, model=model, dataset=dataset, teacher=teacher, seed=seed, resume=resume,
                          experiment=experiment, **options)
    if run_id is not None:
        console.print(f"delrec finetune run {run_id}: see `seqrec runs show {run_id}`", highlight=False)
