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


def recommender_options() -> tuple[type, ...]:
    """Every option `seqrec train` takes: the models' (a name shared by several keeps its first declaration) and
    the loop's."""
    from seqrec.training.config import TrainConfig

    return SASRecConfig, GRU4RecConfig, CaserConfig, BERT4RecConfig, TrainConfig
