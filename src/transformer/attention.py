"""Scaled dot-product attention, from the exercise's loops to the fast path the model uses.

Section 3.2.1 of Vaswani et al. (2017), Eq. (1):  Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V.

The first part keeps the attention exercise (`seeds/000`) under its own names, shapes and mask
meaning (`mask[i, j] == True` hides key j from query i; 0/1 integer masks are accepted too):
the `slow_*` functions are its plain loops and serve as the reference; the others broadcast.
Beyond the exercise, a query whose keys are *all* masked gets a zero vector (never NaN), with
finite gradients, in every variant.

`attend` is the batch-first fast path the Transformer layers call: (B, H, T, Dk) tensors.
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

    A row whose entries are all masked gets all-zero weights (not NaN); its scores are left
    finite before the softmax, so the backward pass is finite too.
    """
    if mask is None:
        return F.softmax(scores, dim=-1)
    mask = _as_bool_mask(mask)
    fully_masked = mask.all(dim=-1, keepdim=True)
    scores = scores.masked_fill(mask & ~fully_masked, float("-inf"))
    return F.softmax(scores, dim=-1).masked_fill(mask, 0.0)


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
# The fast path the model uses.
# --------------------------------------------------------------------------------------------


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Batch-first multi-head attention: q (B, H, T, Dk), k (B, H, S, Dk), v (B, H, S, Dv).

    mask: bool, broadcastable to (B, H, T, S), True = key hidden from that query (e.g. a
    (B, 1, 1, S) padding mask). causal: also hide keys after the query (for T == S, and for
    T < S the last T queries of a cached prefix). Returns (out (B, H, T, Dv), weights
    (B, H, T, S) or None); weights only when `need_weights`. Fully-masked queries give zeros.
    """
    t, s = q.shape[-2], k.shape[-2]
    if causal:
        future = torch.ones(t, s, dtype=torch.bool, device=q.device).triu(s - t + 1)
        mask = future if mask is None else (_as_bool_mask(mask) | future)
    if need_weights:
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5  # (B, H, T, S)
        weights = masked_softmax(scores, mask)
        dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
        return dropped @ v, weights
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p), None
    mask = _as_bool_mask(mask)
    fully_masked = mask.all(dim=-1, keepdim=True)  # (.., T, 1)
    allowed = ~(mask & ~fully_masked)  # SDPA: True = may attend
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    return out.masked_fill(fully_masked, 0.0), None


__all__ = [
    "attend",
    "benchmark",
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
