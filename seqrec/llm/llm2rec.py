"""LLM2Rec (He et al., KDD 2025): turning a decoder LLM into an item embedder for sequential recommendation.

- ``csft`` (collaborative supervised fine-tuning): the titles of a user's history, then the next item's title;
  the loss is on the next title only, so the model learns which items follow which.
- ``mntp`` (IEM, first half): masked next-token prediction with bidirectional attention (as LLM2Vec): a share of
  a history text's tokens are replaced by a mask token and each is predicted from the position before it.
- ``ic`` (IEM, second half): the item-level contrastive term L_IC on single titles (two dropout views, in-batch
  negatives); the run also writes every item's embedding.

``iem`` runs mntp then ic. Each stage starts from ``--model``, which may be an earlier stage's run (``run:ID``),
and is a resumable run through the shared training loop.
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from seqrec.data.batches import next_item_examples
from seqrec.errors import SeqrecError
from seqrec.llm.configs import LLM2RecConfig, LLM2RecTraining
from seqrec.llm.embed import item_texts, pad_token_id, tokenize
from seqrec.llm.encoder import (ItemTextEncoder, contrastive_loss, remove_resume_state, save_embedder,
                                save_model_folder)
from seqrec.store import config_hash, open_store
from seqrec.training.options import resolve

STAGES = ("csft", "mntp", "ic")
SEPARATOR = ", "


def resolve_options(stage: str, options: dict):
    """(LLM2RecConfig, TrainConfig) for a stage from the user's options, every value checked."""
    if stage not in STAGES:
        raise SeqrecError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)} or iem (mntp, then ic)")
    config, train_config = resolve("embed train", options, LLM2RecConfig, LLM2RecTraining, exclude=("metric",))
    if config.attention is None:
        config.attention = "causal" if stage == "csft" else "bidirectional"
    if config.train_layers is not None and (stage != "ic" or config.lora_rank):
        raise SeqrecError("--train-layers serves the ic stage, without --lora-rank")
    if stage == "ic" and train_config.batch_size < 2:
        raise SeqrecError("the ic stage needs batches of at least 2 items (in-batch negatives)")
    return config, train_config


# texts ----------------------------------------------------------------------------------------------------------
def history_examples(data, split: str, config: LLM2RecConfig, count: int, seed: int) -> list[tuple[list[str], str]]:
    """(history titles, next title) pairs: every prefix of the training sequences, or the validation split;
    ``count`` of them drawn with a seeded generator."""
    titles = data.titles()
    if split == "train":
        _, histories, targets = (tensor.numpy() for tensor in next_item_examples(data, config.max_history).tensors)
        pairs = [(history[history > 0], target) for history, target in zip(histories, targets)]  # padding is 0
    else:
        pairs = list(zip(getattr(data, split)["history"], getattr(data, split)["target"]))
    pairs = random.Random(seed).sample(pairs, min(count, len(pairs)))
    return [([titles[item] for item in list(history)[-config.max_history:]], titles[target])
            for history, target in pairs]


def encode_history(tokenizer, history: list[str], target: str, max_length: int) -> tuple[list[int], int]:
    """(token ids of "history, ..., target<eos>", where the target starts); the oldest tokens are cut first."""
    prompt = tokenizer(SEPARATOR.join(history) + SEPARATOR, add_special_tokens=False)["input_ids"]
    answer = tokenizer(target, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        answer = answer + [tokenizer.eos_token_id]
    answer = answer[:max_length - 1]
    prompt = prompt[-(max_length - len(answer)):]
    return prompt + answer, len(prompt)


class PaddedTexts(Dataset):
    """Token sequences with a start-of-loss offset; a batch is padded on the right to its longest sequence."""

    def __init__(self, sequences: list[tuple[list[int], int]], pad_id: int):
        self.sequences, self.pad_id = sequences, pad_id

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int):
        return self.sequences[index]

    def collate(self, batch):
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        starts = torch.tensor([start for _, start in batch])
        for row, (tokens, _) in enumerate(batch):
            ids[row, :len(tokens)] = torch.tensor(tokens)
            mask[row, :len(tokens)] = 1
        return ids, mask, starts


# objectives -------------------------------------------------------------------------------------------------------
def labelled_token_loss(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy where ``labels`` is not -100 (each position predicts the next token's label).

    The LM head runs on the labelled positions only: it is the largest matrix of a small LLM (Gemma-3-270M's is
    262k x 640), and computing it for every token would cost more than the rest of the model.
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # under LoRA
    hidden = causal_lm.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    chosen = targets != -100
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][chosen]).float()
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)  # Gemma's bounded logits
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets[chosen])


class NextTitleObjective(nn.Module):
    """csft: next-token cross-entropy on the target title's tokens only."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        labels = ids.masked_fill((positions < starts[:, None]) | (mask == 0), -100)
        return labelled_token_loss(self.model, ids, mask, labels)


class MaskedNextTokenObjective(nn.Module):
    """mntp: masked tokens are predicted from the position before them (the LM head's own shift), attending both
    ways. The first token is never masked: nothing precedes it."""

    def __init__(self, model: nn.Module, mask_token_id: int, mask_prob: float):
        super().__init__()
        self.model, self.mask_token_id, self.mask_prob = model, mask_token_id, mask_prob

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        chosen = (torch.rand(ids.shape, device=ids.device) < self.mask_prob) & (mask == 1)
        chosen[:, 0] = False
        chosen[chosen.sum(1) == 0, 1] = True  # at least one prediction per text
        labels = ids.masked_fill(~chosen, -100)
        return labelled_token_loss(self.model, ids.masked_fill(chosen, self.mask_token_id), mask, labels)


class ContrastiveObjective(nn.Module):
    """ic: L_IC over a batch of item ids, each encoded twice with different dropout."""

    def __init__(self, encoder: ItemTextEncoder, temperature: float):
        super().__init__()
        self.encoder, self.temperature = encoder, temperature

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(self.encoder(items), self.encoder(items), self.temperature)


class LossValidation:
    """The training objective on fixed validation batches, with a fixed seed for its random parts (masks,
    dropout), so epochs are comparable. ``neg_loss`` is the early-stopping metric."""

    def __init__(self, examples: Dataset, batch_size: int, seed: int, train_mode: bool):
        self.examples, self.batch_size, self.seed, self.train_mode = examples, batch_size, seed, train_mode

    def __call__(self, model, accelerator) -> dict[str, float]:
        objective = accelerator.unwrap_model(model)
        was_training = objective.training
        objective.train(self.train_mode)
        batches = DataLoader(self.examples, batch_size=self.batch_size,
                             collate_fn=getattr(self.examples, "collate", None))
        losses = []
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for tensors in batches:
                if len(tensors[0]) < 2:
                    continue
                losses.append(float(objective(*(t.to(accelerator.device) for t in tensors))))
        objective.train(was_training)
        loss = sum(losses) / max(len(losses), 1)
        return {"loss": loss, "neg_loss": -loss}


# the run --------------------------------------------------------------------------------------------------------
def load_for_stage(path: str, stage: str, config: LLM2RecConfig):
    """The model for a stage: a causal LM (csft, mntp) or its backbone (ic), with attention, dropout, LoRA."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from seqrec.llm.attention import set_attention, set_attention_dropout
    from seqrec.llm.embed import is_decoder
    from seqrec.training.lora import add_lora

    model_class = AutoModel if stage == "ic" else AutoModelForCausalLM
    model = model_class.from_pretrained(path, dtype=torch.float32)
    if not is_decoder(model.config):
        raise SeqrecError(f"{path} is not a decoder LLM; LLM2Rec trains decoders (Llama, Qwen2, ...)")
    model.config.use_cache = False
    set_attention(model, config.attention)
    if stage == "ic":
        set_attention_dropout(model, config.dropout, path)
    if config.lora_rank:
        model = add_lora(model, config.lora_rank)
    return model, AutoTokenizer.from_pretrained(path)


def mask_token(tokenizer) -> int:
    """Decoder tokenizers rarely have a mask token; LLM2Vec borrows one, and so does this (unk, else pad/eos)."""
    for candidate in (tokenizer.mask_token_id, tokenizer.unk_token_id, pad_token_id(tokenizer)):
        if candidate is not None:
            return candidate


def stage_config(model: str, dataset: str, stage: str, seed: int, options: dict) -> dict:
    from seqrec.data.prepare import get_dataset
    from seqrec.llm.registry import model_record

    own, train = resolve_options(stage, options)
    record = model_record(model)
    dataset_row = get_dataset(dataset)
    return {"stage": stage, "model": record.alias, "model_sha256": record.sha256, "dataset": dataset,
            "dataset_fingerprint": dataset_row.fingerprint, "seed": seed, "options": dict(sorted(options.items())),
            **dataclasses.asdict(own), **dataclasses.asdict(train)}


def train_embedder(model: str, dataset: str | None, stage: str, *, seed: int = 0, resume: int | None = None,
                   experiment: str | None = None, **options) -> list[int]:
    """Run an LLM2Rec stage (``iem``: mntp, then ic on its result); returns the run ids. An identical finished
    stage is reused; ``resume`` continues an interrupted one."""
    store = open_store()
    if resume is not None:
        previous = store.resumable_run(resume, "llm2rec")
        return [stage_run(previous.config, previous.experiment, resume)]
    run_ids = []
    for current in (("mntp", "ic") if stage == "iem" else (stage,)):
        config = stage_config(model, dataset, current, seed, options)
        earlier = store.find_run(config_hash(config), kind="llm2rec")
        run_id = earlier.id if earlier is not None else stage_run(config, experiment, None)
        run_ids.append(run_id)
        model = f"run:{run_id}"
    return run_ids


def stage_run(config: dict, experiment: str | None, resume: int | None) -> int | None:
    from seqrec.data.prepare import load_dataset
    from seqrec.llm.registry import RUN_PREFIX, model_record
    from seqrec.training.loop import fit
    from seqrec.training.run import training_run

    stage, seed = config["stage"], config["seed"]
    own, train_config = resolve_options(stage, config["options"])
    data = load_dataset(config["dataset"])
    path = model_record(config["model"]).path
    earlier_stage = [int(config["model"].removeprefix(RUN_PREFIX))] if config["model"].startswith(RUN_PREFIX) else []
    with training_run("llm2rec", config, seed=seed, dataset=config["dataset"], experiment=experiment,
                      inputs=earlier_stage, resume=resume, grad_accum=train_config.grad_accum,
                      mixed_precision=train_config.mixed_precision) as job:
        model, tokenizer = load_for_stage(path, stage, own)
        if stage == "ic":
            texts = item_texts(data, None)
            encoder = ItemTextEncoder(model, tokenize(tokenizer, texts, own.pooling, own.max_length),
                                      pad_token_id(tokenizer), own.pooling, own.train_layers)
            objective = ContrastiveObjective(encoder, own.ic_temperature)
            train_set = TensorDataset(torch.arange(1, data.num_items + 1))
            order = torch.randperm(data.num_items, generator=torch.Generator().manual_seed(seed + 1)) + 1
            valid_set = TensorDataset(order[:own.valid_examples])
        else:
            texts_of = {split: [encode_history(tokenizer, history, target, own.max_length)
                                for history, target in history_examples(data, split, own, count, seed)]
                        for split, count in (("train", own.max_examples), ("valid", own.valid_examples))}
            train_set, valid_set = (PaddedTexts(texts_of[split], pad_token_id(tokenizer))
                                    for split in ("train", "valid"))
            objective = NextTitleObjective(model) if stage == "csft" else \
                MaskedNextTokenObjective(model, mask_token(tokenizer), own.mask_prob)
        validate = LossValidation(valid_set, train_config.batch_size, seed, train_mode=stage == "ic")
        objective, _ = fit(objective, train_set, validate, train_config, job.accelerator, job.dir, seed,
                           resume=resume is not None, validate_first=True)
        meta = {"model": config["model"], "stage": stage, "dataset": config["dataset"]}
        if job.run is not None and stage == "ic":
            save_embedder(job.run, objective.encoder, tokenizer, path,
                          label=f"LLM2Rec {config['model']} ({config['dataset']})", meta=meta)
        elif job.run is not None:
            job.log_artifact(save_model_folder(objective.model, tokenizer, job.dir / "model"), kind="model", meta=meta)
            remove_resume_state(job.dir)
    return job.id
