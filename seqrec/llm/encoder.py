"""A trainable item-text encoder and the losses that shape its embedding space.

Training an embedder (LLM2Rec's item-level contrastive stage, teacher-to-student distillation) needs item
embeddings *with* gradients, for a batch of item ids at a time. :class:`ItemTextEncoder` keeps every item's
tokens in one padded table, so a batch is an index into it, trimmed to the batch's longest text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqrec.errors import SeqrecError
from seqrec.llm.embed import pool


def set_layers(backbone: nn.Module, layers: list[nn.Module], layer_types: list[str] | None) -> None:
    """Give a decoder backbone another list of layers, with its config saying how many (and of which type)."""
    backbone.layers = nn.ModuleList(layers)
    backbone.config.num_hidden_layers = len(layers)
    if layer_types:
        backbone.config.layer_types = list(layer_types)


class PrefixCaptured(Exception):
    """Raised by the hook that has what it needs: the rest of the forward pass is not computed."""


class ItemTextEncoder(nn.Module):
    """Pooled hidden states of a Hugging Face backbone for item ids (row 0 of the table is padding).

    ``train_layers=N`` trains only the top N layers of a decoder: the hidden states entering them are computed
    once per item (the frozen layers below are deterministic) and kept, so each step runs N layers instead of all
    of them. They are kept per real token, end to end (``prefix``, with each item's first row in
    ``prefix_starts``): memory is tokens x width floats, not items x longest text x width.
    """

    def __init__(self, backbone: nn.Module, token_ids: list[list[int]], pad_id: int, pooling: str,
                 train_layers: int | None = None):
        super().__init__()
        self.backbone, self.pooling = backbone, pooling
        backbone.config.use_cache = False  # no generation here, and a cache would expect every layer
        lengths = torch.tensor([1] + [len(ids) for ids in token_ids])
        table = torch.full((len(token_ids) + 1, int(lengths.max())), pad_id, dtype=torch.long)
        for item, ids in enumerate(token_ids, start=1):
            table[item, :len(ids)] = torch.tensor(ids)
        self.register_buffer("tokens", table, persistent=False)  # data, not weights: never in a checkpoint
        self.register_buffer("lengths", lengths, persistent=False)
        self.frozen_layers: list[nn.Module] = []  # a plain list: not part of the module's parameters
        # Buffers, so that they move with the module (Accelerate moves it after it is built); never in a checkpoint.
        self.register_buffer("prefix", None, persistent=False)
        self.register_buffer("prefix_starts", None, persistent=False)
        if train_layers is not None:
            self.freeze_below(train_layers)

    @property
    def width(self) -> int:
        return self.backbone.config.hidden_size

    def item_batches(self, batch_size: int = 64):
        """Item ids 1..N in consecutive batches, on the encoder's device."""
        for start in range(1, len(self.lengths), batch_size):
            yield torch.arange(start, min(start + batch_size, len(self.lengths)), device=self.tokens.device)

    def batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(token ids, attention mask, lengths) of the items, trimmed to their longest text."""
        lengths = self.lengths[items]
        ids = self.tokens[items, :int(lengths.max())]
        mask = (torch.arange(ids.shape[1], device=ids.device) < lengths[:, None]).long()
        return ids, mask, lengths

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        ids, mask, lengths = self.batch(items)
        if self.prefix is None:
            hidden = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        else:
            hidden = self.backbone(inputs_embeds=self.cached_inputs(items, mask), attention_mask=mask).last_hidden_state
        return pool(hidden.float(), mask, lengths, self.pooling)

    def token_rows(self, items: torch.Tensor, positions: int) -> torch.Tensor:
        """[items, positions]: each token's row in ``prefix`` (past an item's end: rows of the next items)."""
        return self.prefix_starts[items][:, None] + torch.arange(positions, device=items.device)

    def cached_inputs(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[items, tokens, width]: the cached hidden states entering the trained layers, zeros at padding."""
        rows = self.token_rows(items, mask.shape[1]).clamp_max(len(self.prefix) - 1)
        return self.prefix[rows] * mask[..., None]

    def freeze_below(self, count: int) -> None:
        """Keep only the top ``count`` layers in the backbone (and trainable); cache what enters them."""
        layers = getattr(self.backbone, "layers", None)
        if not isinstance(layers, nn.ModuleList):
            raise SeqrecError(f"training only the top layers needs a decoder with a `layers` list; "
                              f"{type(self.backbone).__name__} has none")
        if not 1 <= count <= len(layers):
            raise SeqrecError(f"train_layers {count}: the model has {len(layers)} layers")
        first = len(layers) - count
        self.all_layer_types = getattr(self.backbone.config, "layer_types", None)
        self.prefix_starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.prefix = self.hidden_entering(layers[first])
        self.frozen_layers = list(layers[:first])
        self.backbone.requires_grad_(False)
        set_layers(self.backbone, list(layers[first:]), self.all_layer_types and self.all_layer_types[first:])
        self.backbone.layers.requires_grad_(True)
        self.backbone.norm.requires_grad_(True)

    @torch.no_grad()
    def hidden_entering(self, layer: nn.Module, batch_size: int = 64) -> torch.Tensor:
        """[tokens of all items, width]: the hidden states ``layer`` receives for every real token, in eval mode."""
        captured = []

        def capture(module, args, kwargs):
            captured.append(kwargs["hidden_states"] if "hidden_states" in kwargs else args[0])
            raise PrefixCaptured

        was_training = self.backbone.training
        self.backbone.eval()
        hook = layer.register_forward_pre_hook(capture, with_kwargs=True)
        prefix = torch.zeros(int(self.lengths.sum()), self.width, device=self.tokens.device)
        try:
            for items in self.item_batches(batch_size):
                ids, mask, _ = self.batch(items)
                try:
                    self.backbone(input_ids=ids, attention_mask=mask)
                except PrefixCaptured:
                    real = mask.bool()
                    prefix[self.token_rows(items, ids.shape[1])[real]] = captured.pop()[real].float()
        finally:
            hook.remove()
            self.backbone.train(was_training)
        return prefix

    def full_backbone(self) -> nn.Module:
        """The backbone with every layer again (frozen ones below the trained ones), for saving."""
        if self.frozen_layers:
            set_layers(self.backbone, self.frozen_layers + list(self.backbone.layers), self.all_layer_types)
            self.frozen_layers = []
            self.prefix, self.prefix_starts = None, None
        return self.backbone

    @torch.no_grad()
    def embed_all(self, batch_size: int = 64) -> torch.Tensor:
        """Every item's embedding (row 0 zeros), in eval mode, float32 on the CPU."""
        was_training = self.training
        self.eval()
        rows = [torch.zeros(1, self.width)] + [self(items).cpu() for items in self.item_batches(batch_size)]
        self.train(was_training)
        return torch.cat(rows)


def contrastive_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """L_IC (SimCSE): two views of each item (two dropout masks) are positives, the batch's other items negatives."""
    logits = F.normalize(first, dim=-1) @ F.normalize(second, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(first), device=first.device))


def similarity_kl(teacher: torch.Tensor, student: torch.Tensor, tau: float) -> torch.Tensor:
    """KL( softmax(T T^T / tau) || softmax(S S^T / tau) ), averaged over the batch's rows.

    Embeddings are L2-normalised (cosine similarities), so teacher and student may differ in width. Each item's
    similarity to itself is left out: for unit vectors it is always the largest (1 / tau) and says nothing about
    how the items relate, so keeping it would only dilute the distributions being matched.
    """
    if len(teacher) < 3:
        raise SeqrecError("the similarity distributions need batches of at least 3 items")
    teacher, student = F.normalize(teacher, dim=-1), F.normalize(student, dim=-1)
    self_pairs = torch.eye(len(teacher), dtype=torch.bool, device=teacher.device)
    teacher_logits = (teacher @ teacher.T / tau).masked_fill(self_pairs, float("-inf"))
    student_logits = (student @ student.T / tau).masked_fill(self_pairs, float("-inf"))
    teacher_log_p = F.log_softmax(teacher_logits, dim=-1).masked_fill(self_pairs, 0.0)
    student_log_p = F.log_softmax(student_logits, dim=-1).masked_fill(self_pairs, 0.0)
    return (teacher_log_p.exp() * (teacher_log_p - student_log_p)).sum(-1).mean()


def save_model_folder(model: nn.Module, tokenizer, folder: Path, source: str | None = None) -> Path:
    """A plain Hugging Face folder (LoRA merged in, attention dropout back off) that later stages can load.

    A backbone saves itself as e.g. ``LlamaModel``; the architectures of the ``source`` folder it was loaded from
    (``LlamaForCausalLM``) go back into its config, so the folder is still recognised as a decoder (whose attention
    can be switched)."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if hasattr(model.config, "attention_dropout"):
        model.config.attention_dropout = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if source is not None:
        architectures = json.loads(Path(source, "config.json").read_text()).get("architectures", [])
        config_path = folder / "config.json"
        config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "architectures": architectures},
                                          indent=2))
    return folder


def save_embedder(run, encoder: ItemTextEncoder, tokenizer, source: str, label: str, meta: dict) -> None:
    """The end of an embedder-training run: the model folder and every item's embedding become artifacts
    (``--item-emb run:ID`` trains on the embeddings, ``--model run:ID`` loads the model)."""
    from seqrec.llm.embed import ARTIFACT_KIND

    matrix = encoder.embed_all().numpy()
    embeddings_path = run.dir / "item_embeddings.npy"
    np.save(embeddings_path, matrix)
    folder = save_model_folder(encoder.full_backbone(), tokenizer, run.dir / "model", source)
    run.log_artifact(folder, kind="model", meta=meta)
    run.log_artifact(embeddings_path, ARTIFACT_KIND, meta={"label": label, "shape": list(matrix.shape), **meta})
    remove_resume_state(run.dir)


def remove_resume_state(run_dir: Path) -> None:
    """A finished LLM run keeps its model folder; the checkpoint and best weights (gigabytes for a real LLM)
    only served resuming."""
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    (run_dir / "best.pt").unlink(missing_ok=True)
