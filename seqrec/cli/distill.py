"""`seqrec distill`: distill an LLM item embedder from a teacher into a student."""

from typing import Optional

import typer

from seqrec.cli._app import console, explicit_options


def distill(
    teacher: str = typer.Option(..., help="The teacher LLM (alias, pulled model, hub id or folder), e.g. qwen2-0.5b."),
    student: str = typer.Option(..., help="The student LLM, e.g. smollm2-135m."),
    dataset: Optional[str] = typer.Option(None, help="A prepared dataset whose item titles are distilled on."),
    seed: int = typer.Option(0, help="Seed of initialisation, batch order and dropout."),
    tau: Optional[float] = typer.Option(None, help="Temperature of the similarity distributions [0.05]."),
    lambda_kl: Optional[float] = typer.Option(None, help="Weight of the KL term [1.0]."),
    lambda_ic: Optional[float] = typer.Option(None, help="Weight of L_IC, LLM2Rec's item contrastive term [0.1]."),
    ic_temperature: Optional[float] = typer.Option(None, help="Temperature of L_IC [0.05]."),
    lambda_align: Optional[float] = typer.Option(None, help="Weight of a direct cosine alignment to the teacher [0]."),
    projection: Optional[bool] = typer.Option(None, "--projection", help="A trainable student-to-teacher width "
                                              "map for the alignment term (needed when the widths differ)."),
    dropout: Optional[float] = typer.Option(None, help="Student attention dropout (makes L_IC's views) [0.1]."),
    student_layers: Optional[int] = typer.Option(None, help="Keep N of the student's layers, evenly spaced "
                                                 "(e.g. SmolLM2 30 -> 10) \\[all]."),
    train_layers: Optional[int] = typer.Option(None, help="Train only the top N layers; what enters them is "
                                               "computed once per item, so a step costs N layers \\[all]."),
    lora_rank: Optional[int] = typer.Option(None, help="LoRA rank; 0 trains every weight [0]."),
    pooling: Optional[str] = typer.Option(None, help="mean, last or eos, for teacher and student \\[mean]."),
    attention: Optional[str] = typer.Option(None, help="causal or bidirectional \\[causal for decoders]."),
    max_length: Optional[int] = typer.Option(None, help="Longest item text in tokens [64]."),
    epochs: Optional[int] = typer.Option(None, help="Most epochs [3]."),
    batch_size: Optional[int] = typer.Option(None, help="Items per batch: the in-batch distributions' size [32]."),
    lr: Optional[float] = typer.Option(None, help="AdamW learning rate [5e-5]."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay [0]."),
    patience: Optional[int] = typer.Option(None, help="Stop after N epochs without a lower validation KL [2]."),
    grad_accum: Optional[int] = typer.Option(None, help="Gradient accumulation steps [1]."),
    resume: Optional[int] = typer.Option(None, help="Continue an interrupted distillation from its checkpoint."),
    experiment: Optional[str] = typer.Option(None, help="Tag the run with an experiment name."),
) -> None:
    """Distill the teacher's item-embedding space into the student (KL over in-batch similarities + L_IC).

    The teacher's item embeddings are computed once and cached; the student's checkpoint and item embeddings
    become artifacts of the run.
    """
    from seqrec.llm.distill import distill as distill_items

    options = explicit_options(
        tau=tau, lambda_kl=lambda_kl, lambda_ic=lambda_ic, ic_temperature=ic_temperature, lambda_align=lambda_align,
        projection=projection, dropout=dropout, student_layers=student_layers, train_layers=train_layers,
        lora_rank=lora_rank, pooling=pooling, attention=attention, max_length=max_length, epochs=epochs,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience, grad_accum=grad_accum)
    if dataset is None and resume is None:
        raise typer.BadParameter("give --dataset (or --resume RUN)", param_hint="--dataset")
    run_id = distill_items(teacher, student, dataset, seed=seed, resume=resume, experiment=experiment, **options)
    if run_id is not None:
        console.print(f"distill run {run_id}: train on the student's embeddings with `seqrec train sasrec "
                      f"--dataset {dataset} --item-emb run:{run_id}`", highlight=False, soft_wrap=True)
