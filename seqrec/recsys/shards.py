"""Training on a CPU with a batch split across the cores: threads compute its shards at once, torch
single-threaded in each.

A step of a small recommender (256 histories of 10 items, hidden 64) is some hundreds of small kernels. With
torch's intra-op threads each kernel splits its data between the cores, and the next kernel reads what the other
core wrote. On this project's 2-core VM that costs three times more in one of its two states, where an ML-1M-size
SASRec step took 24 ms against 18-19.5 ms in the other. With a shard per core each thread's data stays in its own
core's cache: 19 ms in the slow state, and the fast state's steps as they were (benchmarks/README.md, stop 21).

The batch's gradient is the size-weighted sum of its shards' gradients, added in shard order, so it does not
depend on which thread finishes first. Each shard draws its dropout masks and negatives from a generator of its
own, seeded from torch's global generator by the main thread (``models/randomness.py``): a seed still decides
every draw, and a resumed run ends as the uninterrupted one does. Only a model whose loss is a mean over its
examples can be split this way (``loss_is_example_mean``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from accelerate import Accelerator

from seqrec.recsys.models.randomness import drawing_from

MIN_SHARD = 64  # examples: an ML-1M-size SASRec shard of 64 spends a fifth of its 9.7 ms on fixed per-kernel costs


def shard_count(requested: int, model: torch.nn.Module, batch_size: int, accelerator: Accelerator) -> int:
    """``requested`` shards (0: one per torch thread, each of at least ``MIN_SHARD`` examples) where splitting
    applies: a model with a per-example loss, trained on the CPU by a single process. Elsewhere 1."""
    if (not getattr(accelerator.unwrap_model(model), "loss_is_example_mean", False)
            or accelerator.device.type != "cpu" or accelerator.num_processes > 1):
        return 1
    return requested or max(1, min(torch.get_num_threads(), batch_size // MIN_SHARD))


class CoreShards:
    """``backward(model, batch, accelerator)`` adds a batch's gradient to the parameters' ``.grad`` and returns its
    loss: the model on the whole batch with one shard, the shards on threads of their own with more."""

    def __init__(self, count: int):
        self.count = count
        self.threads = torch.get_num_threads()
        self.threads_per_shard = max(1, self.threads // count)
        self.generators = [torch.Generator() for _ in range(count)]
        self.pool = ThreadPoolExecutor(count - 1, initializer=torch.set_num_threads,
                                       initargs=(self.threads_per_shard,)) if count > 1 else None

    def __enter__(self) -> "CoreShards":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    @contextmanager
    def threads_set(self) -> Iterator[None]:
        """The main thread computes a shard too, with its share of torch's threads; given back afterwards (to
        evaluation). Set once per epoch: switching every step let the idle OpenMP threads spin on the cores the
        shards needed (26 against 19 ms per step)."""
        if self.count == 1:
            yield
            return
        torch.set_num_threads(self.threads_per_shard)
        try:
            yield
        finally:
            torch.set_num_threads(self.threads)

    def backward(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...],
                 accelerator: Accelerator) -> torch.Tensor:
        if self.count == 1:
            loss = model(*batch)
            accelerator.backward(loss)
            return loss
        size = len(batch[0])
        shards = [shard for shard in zip(*(tensor.tensor_split(self.count) for tensor in batch)) if len(shard[0])]
        seeds = torch.randint(1 << 62, (len(shards),)).tolist()  # from torch's global generator
        parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
        compute = functools.partial(self.shard_backward, model, parameters, accelerator.gradient_accumulation_steps)
        jobs = [(shard, len(shard[0]) / size, generator, seed)
                for shard, generator, seed in zip(shards, self.generators, seeds)]
        others = [self.pool.submit(compute, *job) for job in jobs[1:]]
        results = [compute(*jobs[0]), *(other.result() for other in others)]
        for parameter, *gradients in zip(parameters, *(gradients for _, gradients in results)):
            present = [gradient for gradient in gradients if gradient is not None]
            if present:
                total = functools.reduce(torch.add, present)
                parameter.grad = total if parameter.grad is None else parameter.grad.add_(total)
        return sum(loss for loss, _ in results)

    @staticmethod
    def shard_backward(model, parameters, accumulation_steps, shard, weight, shard_generator, seed):
        """(this shard's share of the batch loss, the gradients of that share), drawing from the shard's generator.
        The gradients are divided by the accumulation steps, as Accelerate's backward does."""
        shard_generator.manual_seed(seed)
        with drawing_from(shard_generator):
            loss = model(*shard) * weight
        return loss.detach(), torch.autograd.grad(loss / accumulation_steps, parameters, allow_unused=True)
