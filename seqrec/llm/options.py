"""Checking the options of an LLM training command (distill, embed train) in one place."""

from __future__ import annotations

import dataclasses

from seqrec.errors import SeqrecError

LOOP_OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "eval_every", "grad_accum")
LOOP_RANGES = {"epochs": (1, 10_000), "batch_size": (1, 1 << 16), "lr": (0.0, 1.0), "weight_decay": (0.0, 10.0),
               "patience": (1, 10_000), "eval_every": (1, 10_000), "grad_accum": (1, 1024)}


def split_options(command: str, options: dict, config_class, loop_defaults: dict, ranges: dict):
    """(config_class instance, TrainConfig) from a command's flat options: unknown names and values out of
    ``ranges`` (or the loop's own ranges) are refused with one message naming them."""
    from seqrec.recsys.train import TrainConfig

    own = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(options) - own - set(LOOP_OPTIONS))
    if unknown:
        raise SeqrecError(f"{command} does not take {', '.join(unknown)}; it takes "
                          f"{', '.join(sorted(own | set(LOOP_OPTIONS)))}")
    for key, value in options.items():
        low, high = {**LOOP_RANGES, **ranges}.get(key, (None, None))
        if value is not None and low is not None and not low <= value <= high:
            raise SeqrecError(f"{key} = {value} is out of range [{low}, {high}]")
    config = config_class(**{key: value for key, value in options.items() if key in own})
    loop = TrainConfig(**{**loop_defaults, **{key: value for key, value in options.items() if key in LOOP_OPTIONS}})
    return config, loop
