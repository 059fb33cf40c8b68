"""Teacher-to-student distillation of LLM item embedders (the first paper's efficiency module).

    L = lambda_ic * L_IC + lambda_kl * KL( softmax(T T^T / tau) || softmax(S S^T / tau) )  [+ lambda_align * L_align]

over the in-batch item embeddings T (teacher) and S (student). The teacher is frozen: its item embeddings are an
ordinary cached ``embed items`` artifact, computed once, so distillation only runs the student. Because the KL
compares similarity distributions, teacher and student may differ in tokenizer and width. The optional L_align
(1 - cosine between projected student and teacher embeddings) is the one term that needs equal widths, so it
needs ``projection`` when they differ.

The result is a distill run with the student as a model folder and its item embeddings as artifacts:
``seqrec train sasrec --item-emb run:ID`` trains on them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from seqrec.errors import SeqrecError
from seqrec.llm.configs import DistillConfig, DistillTraining
from seqrec.llm.embed import ARTIFACT_KIND, embed_items, embedding_label, item_texts, pad_token_id, tokenize
from seqrec.llm.encoder import ItemTextEncoder, contrastive_loss, save_embedder, set_layers, similarity_kl
from seqrec.store import config_hash, open_store
from seqrec.training.options import resolve


def resolve_options(options: dict):
    """(DistillConfig, its training loop's config) from the user's options, every value checked."""
    distill_config, train_config = resolve("distill", options, DistillConfig, DistillTraining, exclude=("metric",))
    if train_config.batch_size < 3:
        raise SeqrecError("distill needs batches of at least 3 items (in-batch similarity distributions)")
    if distill_config.lambda_kl == distill_config.lambda_ic == distill_config.lambda_align == 0:
        raise SeqrecError("every loss weight is 0: set lambda_kl, lambda_ic or lambda_align")
    if distill_config.train_layers and distill_config.lora_rank:
        raise SeqrecError("choose one of --train-layers (train the top layers) and --lora-rank (adapters everywhere)")
    if distill_config.projection and distill_config.lambda_align == 0:
        raise SeqrecError("--projection only serves the alignment term: give --lambda-align too")
    return distill_config, train_config


# the student ---------------------------------------------------------------------------------------------------
def keep_layers(backbone: nn.Module, count: int) -> list[int]:
    """Make a shallower model from its own layers: ``count`` evenly spaced ones, the first and last included
    (as DistilBERT initialises from every other layer). Returns the kept layer indices."""
    layers = getattr(backbone, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise SeqrecError(f"--student-layers needs a decoder with a `layers` list; {type(backbone).__name__} has none")
    total = len(layers)
    if not 1 <= count <= total:
        raise SeqrecError(f"--student-layers {count}: the student has {total} layers")
    kept = [0] if count == 1 else [round(index * (total - 1) / (count - 1)) for index in range(count)]
    layer_types = getattr(backbone.config, "layer_types", None)
    set_layers(backbone, [layers[index] for index in kept], layer_types and [layer_types[index] for index in kept])
    for new_index, layer in enumerate(backbone.layers):
        if hasattr(getattr(layer, "self_attn", None), "layer_idx"):
            layer.self_attn.layer_idx = new_index
    return kept


def load_student(path: str, config: DistillConfig):
    """The student backbone (hidden states only) with the asked attention, depth, dropout and adapters."""
    from transformers import AutoModel, AutoTokenizer

    from seqrec.llm.attention import set_attention, set_attention_dropout
    from seqrec.llm.embed import is_decoder
    from seqrec.training.lora import add_lora

    backbone = AutoModel.from_pretrained(path, dtype=torch.float32)
    if backbone.config.is_encoder_decoder:
        backbone = backbone.get_encoder()
    backbone.config.use_cache = False
    if config.lambda_ic > 0:
        set_attention_dropout(backbone, config.dropout, path)
    if is_decoder(backbone.config):
        set_attention(backbone, config.attention or "causal")
    if config.student_layers is not None:
        keep_layers(backbone, config.student_layers)
    if config.lora_rank:
        backbone = add_lora(backbone, config.lora_rank)
    return backbone, AutoTokenizer.from_pretrained(path)


class DistillationObjective(nn.Module):
    """The student encoder, the frozen teacher embeddings and the weighted loss over a batch of item ids."""

    def __init__(self, student: ItemTextEncoder, teacher_embeddings: torch.Tensor, config: DistillConfig):
        super().__init__()
        self.student, self.config = student, config
        self.register_buffer("teacher", teacher_embeddings.float(), persistent=False)
        teacher_width = teacher_embeddings.shape[1]
        if config.lambda_align > 0 and student.width != teacher_width and not config.projection:
            raise SeqrecError(f"the alignment term compares embeddings directly, but the student is {student.width} "
                              f"wide and the teacher {teacher_width}: add --projection (a trainable linear map) "
                              "or set --lambda-align 0")
        self.projection = nn.Linear(student.width, teacher_width, bias=False) if config.projection else None

    def losses(self, items: torch.Tensor) -> dict[str, torch.Tensor]:
        config = self.config
        student = self.student(items)
        teacher = self.teacher[items]
        losses = {"kl": similarity_kl(teacher, student, config.tau)}
        if config.lambda_ic > 0:
            losses["ic"] = contrastive_loss(student, self.student(items), config.ic_temperature)
        if config.lambda_align > 0:
            projected = self.projection(student) if self.projection is not None else student
            losses["align"] = 1 - F.cosine_similarity(projected, teacher, dim=-1).mean()
        return losses

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        weights = {"kl": self.config.lambda_kl, "ic": self.config.lambda_ic, "align": self.config.lambda_align}
        return sum(weights[name] * value for name, value in self.losses(items).items())


class KLValidation:
    """The KL term in eval mode (no dropout) over fixed batches of every item: what distillation minimises,
    measured the same way each epoch. ``neg_kl`` is the early-stopping metric (higher is better)."""

    def __init__(self, num_items: int, batch_size: int, seed: int):
        order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed)) + 1
        self.batches = [batch for batch in order.split(batch_size) if len(batch) >= 3]

    def __call__(self, model, accelerator) -> dict[str, float]:
        objective = accelerator.unwrap_model(model)
        embeddings = objective.student.embed_all().to(objective.teacher.device)
        kl = torch.stack([similarity_kl(objective.teacher[batch], embeddings[batch], objective.config.tau)
                          for batch in self.batches]).mean()
        return {"kl": float(kl), "neg_kl": -float(kl)}


# the tracked run ---------------------------------------------------------------------------------------------
def distill_config_dict(teacher: str, student: str, dataset: str, seed: int, options: dict) -> dict:
    """The fully resolved config of a distillation: its identity and everything needed to rerun it."""
    from seqrec.data.prepare import get_dataset
    from seqrec.llm.registry import model_record

    distill_config, train_config = resolve_options(options)
    teacher_record, student_record = model_record(teacher), model_record(student)
    dataset_row = get_dataset(dataset)
    return {"teacher": teacher_record.alias, "teacher_sha256": teacher_record.sha256,
            "student": student_record.alias, "student_sha256": student_record.sha256,
            "dataset": dataset, "dataset_fingerprint": dataset_row.fingerprint, "seed": seed,
            "options": dict(sorted(options.items())),
            **dataclasses.asdict(distill_config), **dataclasses.asdict(train_config)}


def distill(teacher: str, student: str, dataset: str, *, seed: int = 0, resume: int | None = None,
            experiment: str | None = None, **options) -> int | None:
    """Distill ``teacher``'s item-embedding space into ``student`` on ``dataset``'s item texts; returns the run id.

    An identical finished distillation is reused; ``resume`` continues an interrupted one from its checkpoint.
    """
    store = open_store()
    if resume is not None:
        previous = store.resumable_run(resume, "distill")
        config, experiment = previous.config, previous.experiment
    else:
        config = distill_config_dict(teacher, student, dataset, seed, options)
        earlier = store.find_run(config_hash(config), kind="distill")
        if earlier is not None and store.artifacts(earlier.id, kind=ARTIFACT_KIND):
            return earlier.id
    return distill_run(config, experiment, resume)


def distill_run(config: dict, experiment: str | None, resume: int | None) -> int | None:
    from seqrec.data.prepare import load_dataset
    from seqrec.llm.registry import model_record
    from seqrec.training.loop import fit
    from seqrec.training.run import training_run

    distill_config, train_config = resolve_options(config["options"])
    data = load_dataset(config["dataset"])
    texts = item_texts(data, None)
    # The teacher's embeddings: a cached embed run (computed now if no identical one exists).
    teacher_items = embed_items(config["teacher"], config["dataset"], pooling=distill_config.pooling,
                                attention=distill_config.attention, max_length=distill_config.max_length)
    teacher_embeddings = torch.from_numpy(np.load(teacher_items.path))
    teacher_artifact = open_store().artifacts(teacher_items.run_id, kind=ARTIFACT_KIND)[-1]
    seed = config["seed"]
    with training_run("distill", config, seed=seed, dataset=config["dataset"], experiment=experiment,
                      inputs=[teacher_artifact], resume=resume, grad_accum=train_config.grad_accum,
                      mixed_precision=train_config.mixed_precision) as job:
        student_path = model_record(config["student"]).path
        backbone, tokenizer = load_student(student_path, distill_config)
        encoder = ItemTextEncoder(backbone, tokenize(tokenizer, texts, distill_config.pooling,
                                                     distill_config.max_length),
                                  pad_token_id(tokenizer), distill_config.pooling, distill_config.train_layers)
        objective = DistillationObjective(encoder, teacher_embeddings, distill_config)
        items = TensorDataset(torch.arange(1, data.num_items + 1))
        objective, _ = fit(objective, items, KLValidation(data.num_items, train_config.batch_size, seed),
                           train_config, job.accelerator, job.dir, seed, resume=resume is not None,
                           validate_first=True)
        if job.run is not None:
            save_embedder(job.run, objective.student, tokenizer, student_path,
                          label=f"{config['student']} distilled from {config['teacher']}",
                          meta={"model": config["student"], "teacher": config["teacher"],
                                "dataset": config["dataset"],
                                "baseline": embedding_label(config["student"], distill_config.pooling,
                                                            distill_config.attention or "causal")})
    return job.id
