"""Label-smoothed cross-entropy as a pure function (Vaswani et al., 2017, Section 5.4).

The target distribution q for one position whose reference token is y (y != pad):

    q(k) = (1 - ε) · [k = y]  +  ε / (V - 1) · [k ≠ pad]          (pad_id given)
    q(k) = (1 - ε) · [k = y]  +  ε / V                             (pad_id None)

i.e. the smoothing mass ε is spread uniformly over every class the model may ever be asked
to predict (the padding id is never a target, so it receives none; the reference class gets
its share too, so q(y) = 1 - ε + ε/(V-1)). The loss is the cross-entropy
H(q, p) = -Σ_k q(k) log p(k) with p = softmax(logits), summed over non-pad positions:

    H = -(1 - ε) · log p(y) - ε/(V-1) · Σ_{k ≠ pad} log p(k)

With ε = 0 it is the ordinary negative log-likelihood. With pad_id None it is exactly
`F.cross_entropy(logits, target, label_smoothing=ε, reduction="sum")`; with a pad id the
positions whose target is pad are skipped (as `ignore_index`) and the pad column gets no mass.
The loss is returned as a *sum* together with the plain NLL sum and the token count, so that
gradient accumulation can normalise by the true number of target tokens of the whole step.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class LossSums(NamedTuple):
    """Sums over the non-pad target positions of one batch (0-dim float32 tensors, and an int)."""

    loss: Tensor  # label-smoothed cross-entropy, summed (what is optimised)
    nll: Tensor  # plain negative log-likelihood, summed (for perplexity)
    n_tokens: Tensor  # number of non-pad target positions (int64)


def label_smoothed_cross_entropy(
    logits: Tensor, target: Tensor, epsilon: float, pad_id: int | None = None
) -> LossSums:
    """Summed label-smoothed cross-entropy; see the module docstring for the exact q.

    logits: (..., V) any float dtype (computed in float32); target: (...) int64 class ids.
    Returns `LossSums(loss, nll, n_tokens)`; divide by `n_tokens` (or a whole step's token
    count) for the per-token mean.
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon}")
    V = logits.size(-1)
    logp = torch.log_softmax(logits.float(), dim=-1).reshape(-1, V)  # (N, V)
    tgt = target.reshape(-1)  # (N,)
    if logp.size(0) != tgt.size(0):
        raise ValueError(f"logits {tuple(logits.shape)} do not match target {tuple(target.shape)}")
    nll = -logp.gather(1, tgt.clamp(min=0).unsqueeze(1)).squeeze(1)  # (N,)
    if pad_id is None:
        keep = torch.ones_like(tgt, dtype=torch.bool)
        smooth = -logp.mean(dim=1)  # (N,) = -(1/V) Σ_k log p(k)
    else:
        keep = tgt.ne(pad_id)
        total = logp.sum(dim=1) - logp[:, pad_id]  # Σ_{k≠pad} log p(k)
        smooth = -total / (V - 1)
    per_token = (1.0 - epsilon) * nll + epsilon * smooth  # (N,)
    zero = per_token.new_zeros(())
    return LossSums(
        loss=torch.where(keep, per_token, zero).sum(),
        nll=torch.where(keep, nll, zero).sum(),
        n_tokens=keep.sum(),
    )
