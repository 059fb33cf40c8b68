"""`seqrec distill`: distill an LLM item embedder from a teacher into a student."""

from typing import Optional

import typer

from seqrec.cli._app import console
from seqrec.llm.configs import DistillConfig, DistillTraining
from seqrec.training.options import cli_options


@cli_options(DistillConfig, DistillTraining, exclude=("metric",))
def distill(
    teacher: str = typer.Option(..., help="The teacher LLM (alias, pulled model, hub id or folder), e.g. qwen2-0.5b."),
    student: str = typer.Option(..., help="The student LLM, e.g. smollm2-135m."),
    dataset: Optional[str] = typer.Option(None, help="A prepared dataset whose item titles are distilled on."),
    seed: int = typer.Option(0, help="Seed of initialisation, batch order and dropout."),
    resume: Optional[int] = typer.Option(None, help="Continue an interrupted distillation from its checkpoint."),
    experiment: Optional[str] = typer.Option(None, help="Tag the run with an experiment name."),
    **options,
) -> None:
    """Distill the teacher's item-embedding space into the student (KL over in-batch similarities + L_IC).

    The teacher's item embeddings are computed once and cached; the student's checkpoint and item embeddings
    become artifacts of the run.
    """
    from seqrec.llm.distill import distill as distill_items

    if dataset is None and resume is None:
        raise typer.BadParameter("give --dataset (or --resume RUN)", param_hint="--dataset")
    run_id = distill_items(teacher, student, dataset, seed=seed, resume=resume, experiment=experiment, **options)
    if run_id is not None:
        console.print(f"distill run {run_id}: train on the student's embeddings with `seqrec train sasrec "
                      f"--dataset {dataset} --item-emb run:{run_id}`", highlight=False, soft_wrap=True)
