"""The LLM trainers' options, declared once (no torch here: the CLI reads them to build its flags).

Each trainer has its own objective settings and its own defaults for the shared training loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqrec.training.config import TrainConfig
from seqrec.training.options import option, with_defaults

POOLINGS = ("mean", "last", "eos")
ATTENTIONS = ("causal", "bidirectional")


@dataclass
class EmbedConfig:
    """Item embeddings from a text encoder or an LLM (`seqrec embed items`)."""

    pooling: str = option("mean", "mean, last (last token) or eos (an appended eos token).", choices=POOLINGS)
    attention: str | None = option(None, "causal or bidirectional (Llama/Qwen2 decoders, as in LLM2Vec); none: causal "
                                   "for decoders, bidirectional for encoders.", choices=ATTENTIONS)
    template: str | None = option(None, "Item text: a Jinja string such as '{{ title }}, {{ categories }}', a "
                                  "template file or a shipped name; none: the title.")
    batch_size: int = option(64, "Texts per forward pass (sorted by length, padded per batch).", low=1, high=1 << 16)
    max_length: int = option(64, "Longest text in tokens; longer ones are truncated.", low=2, high=1 << 16)
    bf16: bool = option(False, "Run in bfloat16 (CPUs with AVX512-BF16/AMX, recent GPUs).")


@dataclass
class DistillConfig:
    """Embedder distillation: the objective and the student."""

    tau: float = option(0.05, "Temperature of the similarity distributions.", low=1e-4, high=10.0)
    lambda_kl: float = option(1.0, "Weight of the KL term.", low=0.0, high=1e3)
    lambda_ic: float = option(0.1, "Weight of L_IC, LLM2Rec's item contrastive term.", low=0.0, high=1e3)
    ic_temperature: float = option(0.05, "Temperature of L_IC.", low=1e-4, high=10.0)
    lambda_align: float = option(0.0, "Weight of a direct cosine alignment to the teacher.", low=0.0, high=1e3)
    projection: bool = option(False, "A trainable student-to-teacher width map for the alignment term (needed when "
                              "the widths differ).")
    dropout: float = option(0.1, "Student attention dropout (what makes L_IC's two views differ).", low=0.0, high=0.9)
    student_layers: int | None = option(None, "Keep N of the student's layers, evenly spaced (e.g. SmolLM2 30 -> "
                                        "10); none: all.", low=1, high=1000)
    train_layers: int | None = option(None, "Train only the top N layers; what enters them is computed once per "
                                      "item, so a step costs N layers; none: all.", low=1, high=1000)
    lora_rank: int = option(0, "LoRA rank; 0 trains every weight.", low=0, high=1024)
    pooling: str = option("mean", "Pooling of teacher and student hidden states.", choices=POOLINGS)
    attention: str | None = option(None, "Attention of decoders; none: causal.", choices=ATTENTIONS)
    max_length: int = option(64, "Longest item text in tokens.", low=2, high=4096)


DistillTraining = with_defaults(TrainConfig, "DistillTraining", epochs=3, batch_size=32, lr=5e-5, weight_decay=0.0,
                                patience=2, metric="neg_kl")


@dataclass
class LLM2RecConfig:
    """An LLM2Rec stage (csft, mntp, ic)."""

    max_history: int = option(10, "Titles per history text.", low=1, high=200)
    max_length: int = option(128, "Tokens per text; the oldest titles are cut first (ic: of a title).", low=8,
                             high=8192)
    max_examples: int = option(2000, "Training examples drawn (seeded) from every prefix of the training sequences.",
                               low=1, high=10_000_000)
    valid_examples: int = option(200, "Validation examples.", low=1, high=1_000_000)
    mask_prob: float = option(0.2, "mntp: share of tokens masked.", low=0.01, high=0.9)
    dropout: float = option(0.1, "ic: attention dropout making the two views.", low=0.0, high=0.9)
    ic_temperature: float = option(0.05, "ic: temperature of L_IC.", low=1e-4, high=10.0)
    pooling: str = option("mean", "ic: pooling of the hidden states.", choices=POOLINGS)
    attention: str | None = option(None, "Attention; none: causal for csft, bidirectional for mntp and ic.",
                                   choices=ATTENTIONS)
    lora_rank: int = option(0, "LoRA rank; 0 trains every weight.", low=0, high=1024)
    train_layers: int | None = option(None, "ic: train only the top N layers; none: all.", low=1, high=1000)


LLM2RecTraining = with_defaults(TrainConfig, "LLM2RecTraining", epochs=1, batch_size=8, lr=2e-5, weight_decay=0.0,
                                patience=2, metric="neg_loss")
