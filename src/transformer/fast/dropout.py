"""Dropout (Srivastava et al., 2014) with a cheaper random mask on the CPU, for training.

Inverted dropout: in training each element is kept with probability 1 - p and the kept ones
are scaled by 1 / (1 - p), so the expected output equals the input; in eval mode it is the
identity. On CPU, torch's `bernoulli_` draws one 32-bit random number (and a double
comparison) per element; here each element gets 16 random bits, four elements from one
64-bit draw of the same generator (`torch.manual_seed` and the saved RNG state govern it,
so runs stay reproducible and resumable). The keep probability is then 1 - p rounded to a
multiple of 2^-16 (error at most 7.7e-6). Fewer random bits make it faster than `nn.Dropout`
on the training activations (docs/benchmarks.md); on other devices `F.dropout` runs.

`use_fast_dropout(model)` swaps it in for the model's `nn.Dropout` modules (the attention
weights' dropout is left to the attention path).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16  # 16 random bits per element


def keep_mask(shape: torch.Size, p: float, device: torch.device | None = None) -> torch.Tensor:
    """bool mask of `shape`, True with probability 1 - p (to 2^-16), from 16 random bits each."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(1 << 63), None)  # the full 64-bit range: four uniform int16 per draw
    bits = words.view(torch.int16)[:n].view(shape)  # uniform over [-32768, 32767]
    threshold = round(p * _LEVELS) - _LEVELS // 2  # P(bits >= threshold) = 1 - p (rounded)
    return bits >= threshold


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout of `x` (any shape) with drop probability p in [0, 1]."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    if not x.is_cpu:
        return F.dropout(x, p, training=True)
    keep = keep_mask(x.shape, p, x.device)
    return x * keep * (1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """`nn.Dropout` computed by `dropout` (active in training mode only; same state)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        super().__init__(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def use_fast_dropout(model: nn.Module) -> int:
    """Make every plain `nn.Dropout` of `model` (in-place ones excepted) a `Dropout`; returns
    how many changed."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Dropout and not module.inplace:
            module.__class__ = Dropout  # same state (p, inplace): see transformer.fast.swap
            count += 1
    return count
