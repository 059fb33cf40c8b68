"""`seqrec embed`: item embeddings from text encoders and LLMs."""

from typing import Optional

import typer

from seqrec.cli._app import command_group, console, explicit_options

app = command_group("Item embeddings from text encoders and LLMs.")


@app.command()
def items(
    model: str = typer.Option(..., help="A registry alias, a pulled model, a Hugging Face id or a local folder."),
    dataset: str = typer.Option(..., help="A prepared dataset (see `seqrec data list`)."),
    pooling: str = typer.Option("mean", help="mean, last (last token) or eos (an appended eos token)."),
    attention: Optional[str] = typer.Option(None, help="causal or bidirectional (Llama/Qwen2 decoders, as in "
                                            "LLM2Vec); default: causal for decoders, bidirectional for encoders."),
    template: Optional[str] = typer.Option(None, help="Item text: a Jinja string such as '{{ title }}, "
                                           "{{ categories }}', a template file or a shipped name \\[title]."),
    batch_size: int = typer.Option(64, help="Texts per forward pass (sorted by length, padded per batch)."),
    max_length: int = typer.Option(64, help="Longest text in tokens; longer ones are truncated."),
    bf16: bool = typer.Option(False, "--bf16", help="Run in bfloat16 (CPUs with AVX512-BF16/AMX, recent GPUs)."),
) -> None:
    """Embed every item's text; an identical earlier request is reused, not recomputed."""
    from seqrec.llm.embed import embed_items

    result = embed_items(model, dataset, pooling=pooling, attention=attention, template=template,
                         batch_size=batch_size, max_length=max_length, bf16=bf16)
    state = "reused from" if result.cached else "written by"
    console.print(f"item embeddings {result.path} ({state} run {result.run_id}); train on them with "
                  f"`seqrec train sasrec --dataset {dataset} --item-emb run:{result.run_id}`", highlight=False,
                  soft_wrap=True)


@app.command()
def train(
    model: str = typer.Option(..., help="The LLM to train: an alias, a folder, or run:ID (an earlier stage's model)."),
    dataset: Optional[str] = typer.Option(None, help="A prepared dataset (its training sequences and titles)."),
    stage: str = typer.Option(..., help="csft (history titles -> next title), mntp (masked next-token, "
                              "bidirectional), ic (item contrastive L_IC) or iem (mntp, then ic)."),
    seed: int = typer.Option(0, help="Seed of example sampling, batch order, masks and dropout."),
    max_history: Optional[int] = typer.Option(None, help="Titles per history text [10]."),
    max_length: Optional[int] = typer.Option(None, help="Tokens per text; the oldest titles are cut first [128]."),
    max_examples: Optional[int] = typer.Option(None, help="Training examples drawn from the sequences [2000]."),
    valid_examples: Optional[int] = typer.Option(None, help="Validation examples [200]."),
    mask_prob: Optional[float] = typer.Option(None, help="mntp: share of tokens masked [0.2]."),
    dropout: Optional[float] = typer.Option(None, help="ic: attention dropout making the two views [0.1]."),
    ic_temperature: Optional[float] = typer.Option(None, help="ic: temperature of L_IC [0.05]."),
    pooling: Optional[str] = typer.Option(None, help="ic: mean, last or eos \\[mean]."),
    attention: Optional[str] = typer.Option(None, help="causal or bidirectional \\[csft causal, else bidirectional]."),
    lora_rank: Optional[int] = typer.Option(None, help="LoRA rank; 0 trains every weight [0]."),
    train_layers: Optional[int] = typer.Option(None, help="ic: train only the top N layers \\[all]."),
    epochs: Optional[int] = typer.Option(None, help="Epochs [1]."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size [8]."),
    lr: Optional[float] = typer.Option(None, help="AdamW learning rate [2e-5]."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay [0]."),
    patience: Optional[int] = typer.Option(None, help="Stop after N validations without a lower loss [2]."),
    grad_accum: Optional[int] = typer.Option(None, help="Gradient accumulation steps [1]."),
    resume: Optional[int] = typer.Option(None, help="Continue an interrupted stage from its checkpoint."),
    experiment: Optional[str] = typer.Option(None, help="Tag the runs with an experiment name."),
) -> None:
    """Train an LLM into an item embedder, LLM2Rec's way: csft, then iem (mntp + ic); each stage is a run."""
    from seqrec.llm.llm2rec import train_embedder

    options = explicit_options(
        max_history=max_history, max_length=max_length, max_examples=max_examples, valid_examples=valid_examples,
        mask_prob=mask_prob, dropout=dropout, ic_temperature=ic_temperature, pooling=pooling, attention=attention,
        lora_rank=lora_rank, train_layers=train_layers, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, patience=patience, grad_accum=grad_accum)
    if dataset is None and resume is None:
        raise typer.BadParameter("give --dataset (or --resume RUN)", param_hint="--dataset")
    for run_id in filter(None, train_embedder(model, dataset, stage, seed=seed, resume=resume, experiment=experiment,
                                              **options)):
        console.print(f"LLM2Rec run {run_id}: continue from it with --model run:{run_id}", highlight=False)
