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


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Per-position smoothed loss and NLL with a one-pass gradient, p·(a+b) - a·q_s - c·[k=y].

    Autograd through log_softmax, gather and sum makes several full passes over the (N, V)
    logits (zero fills, scatters and a slow log-softmax backward on CPU); the closed-form
    gradient d/dlogits of a·H(q, p) + b·NLL is a row-scaled softmax minus constants, written
    here with one exp and two in-place passes. Rows masked out get a zero gradient.
    """

    @staticmethod
    def forward(ctx, logits, target, keep, epsilon, pad_id):  # logits (N, V), target/keep (N,)
        V = logits.size(-1)
        x = logits if logits.dtype == torch.float64 else logits.float()
        logp = torch.log_softmax(x, dim=-1)  # (N, V)
        nll = -logp.gather(1, target.unsqueeze(1)).squeeze(1)  # (N,)
        if pad_id is None:
            smooth = -logp.mean(dim=1)  # -(1/V) Σ_k log p(k)
        else:
            smooth = -(logp.sum(dim=1) - logp[:, pad_id]) / (V - 1)  # -(1/(V-1)) Σ_{k≠pad}
        ctx.save_for_backward(logp, target, keep)
        ctx.epsilon, ctx.pad_id, ctx.dtype, ctx.consumed = epsilon, pad_id, logits.dtype, False
        return (1.0 - epsilon) * nll + epsilon * smooth, nll

    @staticmethod
    def backward(ctx, g_loss, g_nll):  # (N,) each, either may be None
        if ctx.consumed:
            raise RuntimeError(
                "backward through label_smoothed_cross_entropy twice is not "
                "supported (its gradient reuses the saved log-probabilities)"
            )
        ctx.consumed = True
        logp, target, keep = ctx.saved_tensors
        eps, pad_id, V = ctx.epsilon, ctx.pad_id, logp.size(-1)
        a = g_loss if g_loss is not None else torch.zeros_like(logp[:, 0])
        b = g_nll if g_nll is not None else torch.zeros_like(a)
        a, b = a * keep, b * keep  # (N,)
        share = eps / (V - 1 if pad_id is not None else V)  # q(k) for k ≠ y, pad
        # p = exp(log p) written over the saved log p: a fresh (N, V) tensor would be new,
        # page-faulting memory every step (glibc mmaps allocations above 32 MiB).
        grad = logp.exp_().mul_((a + b).unsqueeze(1)).sub_((a * share).unsqueeze(1))
        if pad_id is not None:
            grad[:, pad_id] += a * share  # the pad class gets no smoothing mass
        grad.scatter_add_(1, target.unsqueeze(1), (-(a * (1.0 - eps)) - b).unsqueeze(1))
        return grad.to(ctx.dtype), None, None, None, None


def label_smoothed_cross_entropy(
    logits: Tensor, target: Tensor, epsilon: float, pad_id: int | None = None
) -> LossSums:
    """Summed label-smoothed cross-entropy; see the module docstring for the exact q.

    logits: (..., V) any float dtype (computed in float32; float64 stays float64);
    target: (...) int64 class ids.
    Returns `LossSums(loss, nll, n_tokens)`; divide by `n_tokens` (or a whole step's token
    count) for the per-token mean. The gradient is the closed form p - q per position
    (`_SmoothedCrossEntropy`), equal to autograd's through log_softmax.
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon}")
    V = logits.size(-1)
    tgt = target.reshape(-1)  # (N,)
    if logits.numel() // max(V, 1) != tgt.size(0):
        raise ValueError(f"logits {tuple(logits.shape)} do not match target {tuple(target.shape)}")
    keep = torch.ones_like(tgt, dtype=torch.bool) if pad_id is None else tgt.ne(pad_id)
    per_token, nll = _SmoothedCrossEntropy.apply(
        logits.reshape(-1, V), tgt.clamp(min=0), keep, epsilon, pad_id
    )
    zero = per_token.new_zeros(())
    return LossSums(
        loss=torch.where(keep, per_token, zero).sum(),
        nll=torch.where(keep, nll, zero).sum(),
        n_tokens=keep.sum(),
    )
