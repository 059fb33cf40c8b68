"""Dropout that is cheaper on CPUs, where drawing random numbers took about a tenth of a SASRec training step on
2 cores.

torch's CPU ``bernoulli_`` (what ``nn.Dropout`` uses) and ``uniform_`` each cost one generator call per element;
here one 64-bit draw gives four 16-bit uniforms, and an element is kept when its uniform clears a threshold. The
keep probability is the threshold's exact share of 2**16 (within 2**-16 of ``1 - p``) and kept elements are scaled
by its inverse, so the expectation and the gradient are those of ``nn.Dropout``. Other devices use torch's own.
"""

import torch
from torch import nn

from seqrec.recsys.models.randomness import generator

LEVELS = 1 << 16


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or not x.is_cpu or not 0 < p < 1:
        return nn.functional.dropout(x, p, training)
    dropped = round(p * LEVELS)  # uniforms below this (of 2**16 levels) are dropped
    count = x.numel()
    draws = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1, generator=generator())
    uniforms = draws.view(torch.int16)[:count].view(x.shape)  # each in [-2**15, 2**15)
    # written straight into x's dtype: a bool result converted afterwards costs several times the comparison
    keep = torch.ge(uniforms, dropped - LEVELS // 2, out=torch.empty_like(x)).mul_(LEVELS / (LEVELS - dropped))
    return x * keep


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
