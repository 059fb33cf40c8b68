"""The training loop's settings, declared once (no torch here: the CLI reads them to build its flags)."""

from __future__ import annotations

from dataclasses import dataclass

from seqrec.training.options import option


@dataclass
class TrainConfig:
    """The loop's settings; a trainer may change their defaults (``options.with_defaults``)."""

    epochs: int = option(200, "Most epochs.", low=1, high=100_000)
    batch_size: int = option(64, "Examples per batch.", low=1, high=1 << 20)
    lr: float = option(1e-3, "Peak learning rate (the trainer's optimizer: AdamW; Lion in DELRec).", low=1e-8, high=10.0)
    weight_decay: float = option(1e-4, "Decoupled weight decay of the optimizer.", low=0.0, high=10.0)
    eval_every: int = option(1, "Validate every N epochs.", low=1, high=100_000)
    patience: int = option(10, "Stop after N validations without improvement.", low=1, high=100_000)
    metric: str = option("ndcg@10", "Validation metric for early stopping and model selection.")
    grad_accum: int = option(1, "Gradient accumulation steps.", low=1, high=4096)
    mixed_precision: str = option("no", "no, bf16 (CPUs and GPUs) or fp16 (GPUs): training and evaluation under "
                                  "autocast.", choices=("no", "bf16", "fp16"))
