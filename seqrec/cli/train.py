"""`seqrec train` and `seqrec evaluate`: conventional sequential recommenders."""

from typing import Optional

import typer

from seqrec.cli._app import console, explicit_options


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"seeds must be comma-separated integers, got {text!r}") from None


def train(
    model: str = typer.Argument(..., help="sasrec, gru4rec, caser or bert4rec."),
    dataset: Optional[str] = typer.Option(None, help="A prepared dataset (see `seqrec data list`)."),
    seeds: str = typer.Option("0", help="Comma-separated seeds; one run per seed, e.g. 0,1,2."),
    item_emb: Optional[str] = typer.Option(None, help="Frozen item embeddings: a .npy file, artifact:ID or run:ID "
                                           "(an embed run); default: trainable ID embeddings."),
    eval: str = typer.Option("full", "--eval", help="full (rank the whole catalogue) or sampled:N (1 positive + N "
                             "random negatives, e.g. sampled:14)."),
    noise: Optional[str] = typer.Option(None, help="Evaluate test on noisy histories: deletion or deletion:RATE."),
    mask_seen: bool = typer.Option(False, help="Never rank items the user already had (RecBole/LLM2Rec do not)."),
    resume: Optional[int] = typer.Option(None, help="Continue an interrupted run from its last checkpoint."),
    experiment: Optional[str] = typer.Option(None, help="Tag the runs with an experiment name."),
    hidden: Optional[int] = typer.Option(None, help="Hidden size [128]."),
    layers: Optional[int] = typer.Option(None, help="Transformer or GRU layers [2 / 1]."),
    heads: Optional[int] = typer.Option(None, help="Attention heads [2]."),
    dropout: Optional[float] = typer.Option(None, help="Dropout [0.3]."),
    loss: Optional[str] = typer.Option(None, help="ce (full softmax) or bce (one sampled negative) \\[ce]."),
    norm: Optional[str] = typer.Option(None, help="SASRec/BERT4Rec LayerNorm layout: pre (the SASRec paper's) or "
                                       "post (RecBole's, with the input embeddings normalised too) \\[pre]."),
    mask_prob: Optional[float] = typer.Option(None, help="BERT4Rec: share of items masked [0.2]."),
    epochs: Optional[int] = typer.Option(None, help="Most epochs [200]."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size [256]."),
    lr: Optional[float] = typer.Option(None, help="AdamW learning rate [1e-3]."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay [1e-4]."),
    eval_every: Optional[int] = typer.Option(None, help="Validate every N epochs [1]."),
    patience: Optional[int] = typer.Option(None, help="Stop after N validations without improvement [10]."),
    metric: Optional[str] = typer.Option(None, help="Validation metric for early stopping \\[ndcg@10]."),
    grad_accum: Optional[int] = typer.Option(None, help="Gradient accumulation steps [1]."),
    mixed_precision: Optional[str] = typer.Option(
        None, help="no, bf16 (CPUs and GPUs) or fp16 (GPUs): training and evaluation under autocast, scores kept "
                   "float32 \\[no]."),
    cpu_shards: Optional[int] = typer.Option(
        None, help="On CPUs, split each batch across this many threads, one core each (not bert4rec); 0: one per "
                   "core, each of at least 64 examples; 1: torch's own threads on the whole batch [0]."),
) -> None:
    """Train a recommender once per seed; metrics per epoch and final test metrics go to the database."""
    from seqrec.recsys.runner import train_model

    hyper = explicit_options(
        hidden=hidden, layers=layers, heads=heads, dropout=dropout, loss=loss, norm=norm, mask_prob=mask_prob,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, eval_every=eval_every,
        patience=patience, metric=metric, grad_accum=grad_accum, mixed_precision=mixed_precision,
        cpu_shards=cpu_shards)
    if dataset is None and resume is None:
        raise typer.BadParameter("give --dataset (or --resume RUN)", param_hint="--dataset")
    run_ids = train_model(model, dataset, parse_seeds(seeds), item_emb, eval, noise, mask_seen, resume, experiment,
                          **hyper)
    for run_id in filter(None, run_ids):
        console.print(f"run {run_id} finished: see `seqrec runs show {run_id}`")


def evaluate(
    run_id: int = typer.Argument(..., help="A finished training run."),
    eval: Optional[str] = typer.Option(None, "--eval", help="full or sampled:N (default: as trained)."),
    noise: Optional[str] = typer.Option(None, help="deletion or deletion:RATE (default: as trained)."),
    mask_seen: Optional[bool] = typer.Option(None, "--mask-seen/--no-mask-seen", help="Mask already-seen items."),
    experiment: Optional[str] = typer.Option(None, help="Tag the new run with an experiment name."),
) -> None:
    """Re-evaluate a trained run's best model on the test split into a new run linked to it."""
    from seqrec.recsys.runner import evaluate_run

    new_id = evaluate_run(run_id, noise, eval, mask_seen, experiment)
    if new_id is not None:
        console.print(f"run {new_id} evaluated run {run_id}: see `seqrec runs show {new_id}`")
