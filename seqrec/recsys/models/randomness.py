"""Where a model's random draws (dropout masks, sampled negatives) come from.

Normally torch's global generator. A batch shard computed on a thread of its own (``recsys/shards.py``) draws from
a generator of its own instead, seeded by the main thread: threads sharing the global generator would take its
numbers in whatever order they happen to run, and a seed would no longer decide the masks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_this_thread = threading.local()


def generator() -> torch.Generator | None:
    """This thread's shard generator, or None (torch's global generator) outside a shard."""
    return getattr(_this_thread, "generator", None)


@contextmanager
def drawing_from(shard_generator: torch.Generator) -> Iterator[None]:
    _this_thread.generator = shard_generator
    try:
        yield
    finally:
        _this_thread.generator = None
