"""Perplexity of reference translations under a model (teacher forcing).

ppl = exp( -(1/N) Σ log p(y_t | y_<t, x) ), summed over every reference target token including
</s> (the tokens the model is trained to predict; <s> and padding excluded), N their number.
The targets follow the training convention: tgt = <s> y1 .. yn </s>, the decoder reads
tgt[:, :-1] and is scored on tgt[:, 1:].

Shape legend: B batch, S source length, T target length (+1 with <s>), V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Perplexity:
    """Summed negative log-likelihood (nats) over `tokens` target tokens."""

    nll: float
    tokens: int

    @property
    def per_token(self) -> float:
        """Mean negative log-likelihood per token (nats)."""
        return self.nll / self.tokens if self.tokens else float("nan")

    @property
    def perplexity(self) -> float:
        return math.exp(self.per_token) if self.tokens else float("nan")

    def __add__(self, other: Perplexity) -> Perplexity:
        return Perplexity(self.nll + other.nll, self.tokens + other.tokens)


@torch.inference_mode()
def batch_nll(
    model: Callable[[Tensor, Tensor], Tensor], src: Tensor, tgt: Tensor, pad_id: int
) -> Perplexity:
    """Summed NLL of one batch. src (B, S) int64; tgt (B, T+1) int64 = <s> y </s>, padded with
    pad_id; model(src, tgt_in) -> logits (B, T, V). The model should be in eval mode."""
    logits = model(src, tgt[:, :-1]).float()  # (B, T, V)
    target = tgt[:, 1:]  # (B, T)
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        target.reshape(-1),
        ignore_index=pad_id,
        reduction="sum",
    )
    return Perplexity(float(nll), int(target.ne(pad_id).sum()))


def corpus_perplexity(
    model: Callable[[Tensor, Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    pad_id: int,
) -> Perplexity:
    """Sum `batch_nll` over (src, tgt) batches."""
    total = Perplexity(0.0, 0)
    for src, tgt in batches:
        total = total + batch_nll(model, src, tgt, pad_id)
    return total
