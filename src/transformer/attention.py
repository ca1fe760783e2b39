"""Scaled dot-product attention, from the exercise's loops to the batch-first form the model uses.

Section 3.2.1 of Vaswani et al. (2017), Eq. (1):  Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V.

The first part keeps the attention exercise (`seeds/000`) under its own names, shapes and mask
meaning (`mask[i, j] == True` hides key j from query i; 0/1 integer masks are accepted too):
the `slow_*` functions are its plain loops and serve as the reference; the others broadcast.
Beyond the exercise, a query whose keys are *all* masked gets a zero vector (never NaN), with
finite gradients, in every variant.

`attention` is the batch-first form the Transformer layers call: (B, H, T, Dk) tensors, with a
`future_mask` for the decoder. The fast engine's dispatch over torch's fused kernel is
`transformer.fast.attend`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

# Shape legend: B batch, N queries, M keys, H heads, Dk key/query dim, Dv value dim.


def _as_bool_mask(mask: torch.Tensor) -> torch.Tensor:
    """The exercise's generators pass 0/1 integer masks; everything else uses bool."""
    return mask if mask.dtype == torch.bool else mask.ne(0)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis where `mask` (True = masked) entries get weight 0.

    scores: (..., T, S) float; mask: bool or 0/1 integers, broadcastable to scores.
    A row whose entries are all masked gets all-zero weights, not NaN: masked scores are set to
    the dtype's most negative *finite* value (so exp() of them is exactly 0 in any row that has
    an unmasked entry, and a fully-masked row stays finite, forward and backward), and only the
    fully-masked rows, if any, are zeroed afterwards.
    """
    if mask is None:
        return F.softmax(scores, dim=-1)
    mask = _as_bool_mask(mask)
    weights = F.softmax(scores.masked_fill(mask, torch.finfo(scores.dtype).min), dim=-1)
    fully_masked = mask.all(dim=-1, keepdim=True)  # (..., T|1, 1), as small as the mask
    if fully_masked.any():
        weights = weights.masked_fill(fully_masked, 0.0)
    return weights


# --------------------------------------------------------------------------------------------
# The exercise: one query, then loops (slow_*) and broadcasting over queries, heads and batch.
# --------------------------------------------------------------------------------------------


def scale_dot_product_attention(q, K, V, mask):
    """Scaled dot-product attention for a single query.

    q: (1, Dk), K: (M, Dk), V: (M, Dv), mask: (1, M) with mask[0, j] True = key j hidden.
    Returns (1, Dv).
    """
    _, d_k = q.shape
    scores = q @ K.T * d_k**-0.5  # (1, Dk) @ (Dk, M) -> (1, M)
    weights = masked_softmax(scores, mask)  # (1, M)
    return weights @ V  # (1, M) @ (M, Dv) -> (1, Dv)


def slow_queries_attention(Q, K, V, mask):
    """Loop over queries. Q: (N, Dk), K: (M, Dk), V: (M, Dv), mask: (N, M) -> (N, Dv)."""
    rows = [
        scale_dot_product_attention(query.unsqueeze(0), K, V, row.unsqueeze(0))  # (1, Dv)
        for query, row in zip(Q, mask)
    ]
    return torch.stack(rows).squeeze(1)  # (N, 1, Dv) -> (N, Dv)


def queries_attention(Q, K, V, mask):
    """Broadcast over queries. Q: (N, Dk), K: (M, Dk), V: (M, Dv), mask: (N, M) -> (N, Dv)."""
    _, d_k = Q.shape
    scores = Q @ K.T * d_k**-0.5  # (N, Dk) @ (Dk, M) -> (N, M)
    return masked_softmax(scores, mask) @ V  # (N, M) @ (M, Dv) -> (N, Dv)


def slow_heads_attention(Q, K, V, mask):
    """Loop over heads. Q: (N, H, Dk), K: (M, H, Dk), V: (M, H, Dv), mask: (N, M) -> (N, H, Dv).

    The same mask applies to every head.
    """
    heads = [
        slow_queries_attention(Q[:, h, :], K[:, h, :], V[:, h, :], mask)  # (N, Dv)
        for h in range(Q.shape[1])
    ]
    return torch.stack(heads).transpose(0, 1)  # (H, N, Dv) -> (N, H, Dv)


def heads_attention(Q, K, V, mask):
    """Broadcast over heads. Q: (N, H, Dk), K: (M, H, Dk), V: (M, H, Dv), mask: (N, M)."""
    d_k = Q.shape[-1]
    Qh, Kh, Vh = Q.transpose(0, 1), K.transpose(0, 1), V.transpose(0, 1)  # (H, N|M, Dk|Dv)
    scores = Qh @ Kh.transpose(1, 2) * d_k**-0.5  # (H, N, Dk) @ (H, Dk, M) -> (H, N, M)
    out = masked_softmax(scores, mask.unsqueeze(0)) @ Vh  # (H, N, M) @ (H, M, Dv) -> (H, N, Dv)
    return out.transpose(0, 1)  # (N, H, Dv)


def slow_multi_head_attention(Q, K, V, mask):
    """Loop over the batch. Q: (B, N, H, Dk), K: (B, M, H, Dk), V: (B, M, H, Dv),
    mask: (B, N, M) -> (B, N, H, Dv)."""
    return torch.stack(
        [slow_heads_attention(q, k, v, m) for q, k, v, m in zip(Q, K, V, mask)]
    )  # (B, N, H, Dv)


def multi_head_attention(Q, K, V, mask):
    """Broadcast over batch and heads. Q: (B, N, H, Dk), K: (B, M, H, Dk), V: (B, M, H, Dv),
    mask: (B, N, M) -> (B, N, H, Dv)."""
    d_k = Q.shape[-1]
    Qh, Kh, Vh = Q.transpose(1, 2), K.transpose(1, 2), V.transpose(1, 2)  # (B, H, N|M, D)
    scores = Qh @ Kh.transpose(-1, -2) * d_k**-0.5  # (B, H, N, M)
    out = masked_softmax(scores, mask.unsqueeze(1)) @ Vh  # (B, H, N, M) @ (B, H, M, Dv)
    return out.transpose(1, 2)  # (B, N, H, Dv)


def multi_head_attention_einops(Q, K, V, mask):
    """`multi_head_attention` written with `torch.einsum` and `einops.rearrange`."""
    d_k = Q.shape[-1]
    scores = torch.einsum("bnhd,bmhd->bhnm", Q, K) * d_k**-0.5
    weights = masked_softmax(scores, rearrange(mask, "b n m -> b 1 n m"))
    return torch.einsum("bhnm,bmhd->bnhd", weights, V)


def benchmark(
    input_generator: Iterator[tuple],
    slow_function: Callable,
    fast_function: Callable,
    n_tries: int = 100,
) -> dict[str, float]:
    """The exercise's benchmark: both functions must agree on every input; prints each one's
    mean ± std time and the speedup, and returns them as a dict (seconds)."""
    slow_times, fast_times = [], []
    for _ in range(n_tries):
        inputs = next(input_generator)
        start = time.perf_counter()
        slow_result = slow_function(*inputs)
        slow_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fast_result = fast_function(*inputs)
        fast_times.append(time.perf_counter() - start)
        if not torch.allclose(slow_result, fast_result):
            diff = (slow_result - fast_result).abs().max().item()
            raise AssertionError(f"outputs differ (max abs diff {diff:.3g})")
    print("Your output is correct")
    print(f"Timing of slow function:  AVG: {np.mean(slow_times)}+-{np.std(slow_times)}")
    print(f"Timing of fast function:  AVG: {np.mean(fast_times)}+-{np.std(fast_times)}")
    speedup = float(np.mean(slow_times) / np.mean(fast_times))
    print(f"Speedup: {speedup} times")
    return {
        "slow_mean": float(np.mean(slow_times)),
        "slow_std": float(np.std(slow_times)),
        "fast_mean": float(np.mean(fast_times)),
        "fast_std": float(np.std(fast_times)),
        "speedup": speedup,
    }


# --------------------------------------------------------------------------------------------
# Batch-first attention, as the model's layers call it (the reference core).
# --------------------------------------------------------------------------------------------


def future_mask(t: int, s: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, S) bool, True = key j is in the future of query i (Section 3.2.3), when the T
    queries are the last T of S positions (a cached prefix of S - T keys comes first):
    masked[i, j] = j > i + (S - T)."""
    return torch.ones(t, s, dtype=torch.bool, device=device).triu(s - t + 1)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention (Section 3.2.1, Eq. 1), batch first, with its weights.

    q: (B, H, T, Dk), k: (B, H, S, Dk), v: (B, H, S, Dv), float.
    mask: bool broadcastable to (B, H, T, S), True = that key is hidden from that query.
    dropout_p: dropout on the weights (pass 0.0 in eval mode).
    Returns (out (B, H, T, Dv), weights (B, H, T, S) before dropout). A query whose keys are
    all masked gets a zero vector and zero weights.
    """
    d_k = q.shape[-1]
    scores = q @ k.transpose(-1, -2) * d_k**-0.5  # (B, H, T, Dk) @ (B, H, Dk, S) -> (B, H, T, S)
    weights = masked_softmax(scores, mask)  # (B, H, T, S)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights  # (B, H, T, S) @ (B, H, S, Dv) -> (B, H, T, Dv)


__all__ = [
    "attention",
    "benchmark",
    "future_mask",
    "heads_attention",
    "masked_softmax",
    "multi_head_attention",
    "multi_head_attention_einops",
    "queries_attention",
    "scale_dot_product_attention",
    "slow_heads_attention",
    "slow_multi_head_attention",
    "slow_queries_attention",
]
