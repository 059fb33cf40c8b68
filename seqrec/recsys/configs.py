"""The recommenders' options, declared once (no torch here: the CLI reads them to build its flags)."""

from __future__ import annotations

from dataclasses import dataclass

from seqrec.training.options import option


@dataclass
class RecommenderConfig:
    """Options every recommender takes; ``max_len`` comes from the dataset."""

    hidden: int = option(64, "Hidden size.", low=1, high=8192)
    dropout: float = option(0.3, "Dropout.", low=0.0, high=0.99)
    loss: str = option("ce", "ce: softmax over every item; bce: one sampled negative per scored position.",
                       choices=("ce", "bce"))
    objective: str = option("all", "all: each training history once per epoch, the loss on every position (the "
                            "SASRec paper's); last: every prefix its own example, its newest position scored "
                            "(RecBole's).", choices=("all", "last"))
    max_len: int = 10


@dataclass
class SASRecConfig(RecommenderConfig):
    layers: int = option(2, "Transformer blocks.", low=1, high=48)
    heads: int = option(2, "Attention heads (hidden must divide by them).", low=1, high=64)
    norm: str = option("pre", "LayerNorm layout: pre (before each sub-layer, the SASRec paper's) or post (after each "
                       "residual sum, the input embeddings normalised too: RecBole's).", choices=("pre", "post"))


@dataclass
class GRU4RecConfig(RecommenderConfig):
    layers: int = option(1, "GRU layers.", low=1, high=48)


@dataclass
class CaserConfig(RecommenderConfig):
    horizontal_filters: int = option(16, "Caser: filters per horizontal height.", low=1, high=4096)
    vertical_filters: int = option(4, "Caser: vertical filters.", low=1, high=4096)


@dataclass
class BERT4RecConfig(SASRecConfig):
    mask_prob: float = option(0.2, "BERT4Rec: share of items masked in training.", low=0.01, high=0.99)
    objective: str = option("masked", "BERT4Rec trains by predicting masked items.", choices=("masked",))


@dataclass
class ProfileConfig:
    """User-profile distillation (the second paper; sasrec and bert4rec), off unless ``profiles`` names user
    embeddings; and the paper's last-epoch test protocol, for comparison with model selection on validation."""

    profiles: str | None = option(None, "User embeddings to distil into the recommender: run:ID of a `seqrec "
                                  "profiles embed` run (used in training only, never at inference).")
    profile_weight: float = option(0.8, "alpha: the loss is alpha * L_guide + (1 - alpha) * L_rec while distilling.",
                                   low=0.0, high=1.0)
    profile_layer: int = option(1, "k: the transformer block (1 = the first) whose output states are pooled.",
                                low=1, high=48)
    profile_pool: str = option("mean", "How a history's states at layer k become one vector, padding excluded: "
                               "mean, exp (weights proportional to exp(0.1 * position), the newest heaviest), "
                               "attention (a learned query), last (the newest item).",
                               choices=("mean", "exp", "attention", "last"))
    profile_loss: str = option("mse", "L_guide between the pooled state and the mapped profile: mse, rmse or cos "
                               "(1 - cosine).", choices=("mse", "rmse", "cos"))
    profile_map: str = option("fixed", "Profile space to hidden size: fixed (a seeded random linear map under a "
                              "stop-gradient: the target cannot collapse), trainable (learned jointly, the "
                              "paper's), none (the widths must already match).",
                              choices=("fixed", "trainable", "none"))
    distill_epochs: int | None = option(None, "E: epochs trained with the guide loss, L_rec alone afterwards "
                                        "(default: every epoch).", low=1, high=100_000)
    scale_guide: bool = option(False, "Scale L_guide by the detached ratio L_rec / L_guide.")
    report_last_epoch: bool = option(False, "Also log the last epoch's test metrics (split test_last), the "
                                     "paper's protocol; model selection on validation is unchanged.")


def recommender_options() -> tuple[type, ...]:
    """Every option `seqrec train` takes: the models' (a name shared by several keeps its first declaration),
    profile distillation's and the loop's."""
    from seqrec.training.config import TrainConfig

    return SASRecConfig, GRU4RecConfig, CaserConfig, BERT4RecConfig, ProfileConfig, TrainConfig
