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
# The fast path the model uses.
# --------------------------------------------------------------------------------------------
#
# Dispatch, from `transformer bench attention --sweep` and the long-sequence table, measured on
# the 2-core CPU dev machine with torch 2.13 (tables: docs/benchmarks.md):
# torch's fused SDPA is as fast as broadcasting (matmul + masked_softmax + matmul) or faster
# at every size measured in the forward pass (one unconfirmed 2-thread exception, see the doc),
# from one 32-query head up to 4 x 8 heads x 2048 tokens, with no mask, a padding mask or a
# causal mask; at 512-2048 tokens it is 2.4-6.4x faster (1.3-3.8x forward+backward) and
# never materialises the (T, S) weights; with 2 threads it also won every forward+backward
# measured. So the rule is SDPA, with two
# exceptions: `need_weights` (SDPA does not return them) and one measured crossover: with ONE
# intra-op thread, autograd recording and only a few queries (T <= 8) over many keys
# (B * H * S >= 16384), broadcasting's forward+backward beat SDPA's by ~1.1-1.6x (a noisy,
# modest finding: see the doc). On CUDA SDPA is the fused flash/memory-efficient kernel, so
# the rule there is SDPA.
#
# One more measured exception, for beam search: a few queries per (batch, head) (T <= 8, each
# sees every key: T == 1 or not causal), at least 1024 (batch, head, query) rows in all, on the
# CPU, with nothing recorded for autograd. There two batched matrix products (`torch.bmm`) beat
# SDPA's flash kernel: 1.2-1.5x for one query over 1024 (batch, head) pairs (beam 4 x 64
# sentences x 4 heads, self-attention) over 16-64 keys, 1.8-2.7x for the 4 beams of a sentence
# querying its source together (64 sentences x 4 heads x 4 queries: cross-attention, whose
# memory the beams share), and 1.3-2.0x for 8 queries; at 256 single-query pairs (greedy, 64
# sentences) SDPA is as fast or faster (0.9-1.1x, noisy; 0.6-0.8x on an earlier run) and
# greedy keeps it (`python scripts/micro_bench.py attend-one`, docs/benchmarks.md).
_FEW_QUERIES, _MANY_KEYS = 8, 16384
_BMM_MIN_ROWS = 1024


def _few_queries_inference(q, k, v, causal: bool, need_weights: bool, dropout_p: float) -> bool:
    """T <= 8 queries that each see every key (beam search's steps; also a short encoder),
    >= 1024 (batch, head, query) rows, on the CPU, no dropout, no weights, no autograd."""
    t = q.shape[-2]
    if t > _FEW_QUERIES or (causal and t > 1) or not q.is_cpu or dropout_p > 0 or need_weights:
        return False
    if q.shape[0] * q.shape[1] * t < _BMM_MIN_ROWS:
        return False
    return not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad))


def _attend_few_queries(q, k, v, mask):
    """q (B, H, T, Dk), k (B, H, S, Dk), v (B, H, S, Dv) -> (B, H, T, Dv) as two batched
    matrix products over the B·H heads (reshape is free on contiguous k, v); no causal mask."""
    b, h, t, d_k = q.shape
    s, d_v = k.shape[-2], v.shape[-1]
    if s == 0:
        return q.new_zeros(b, h, t, d_v)  # no key: the zero vector, as for masked rows
    scores = torch.bmm((q * d_k**-0.5).reshape(b * h, t, d_k), k.reshape(b * h, s, d_k).mT)
    weights = masked_softmax(scores.view(b, h, t, s), mask)  # (B, H, T, S)
    return torch.bmm(weights.view(b * h, t, s), v.reshape(b * h, s, d_v)).view(b, h, t, d_v)


def _broadcasting_is_faster(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """The measured crossover above (CPU, one thread, autograd, T <= 8, B*H*S >= 16384)."""
    if not (q.is_cpu and q.shape[-2] <= _FEW_QUERIES and torch.is_grad_enabled()):
        return False
    if not (q.requires_grad or k.requires_grad or v.requires_grad):
        return False
    return torch.get_num_threads() == 1 and k.numel() // max(k.shape[-1], 1) >= _MANY_KEYS


def _causal_allowed(t: int, s: int, device: torch.device) -> torch.Tensor:
    """(T, S) bool, True = query i may see key j, when the T queries are the last T of S
    positions (a cached prefix of S - T keys): allowed[i, j] = j <= i + (S - T)."""
    return torch.ones(t, s, dtype=torch.bool, device=device).tril(s - t)


_CPU_ZERO_ROWS: dict[tuple[torch.dtype, bool], bool] = {}  # (dtype, dropout) -> probe result


def _native_zero_rows(q: torch.Tensor, dropout_p: float) -> bool:
    """Whether SDPA on q's device already gives fully-masked queries a zero output and finite
    gradients. Probed once per (dtype, dropout) on the CPU; never trusted on accelerators,
    whose kernel choice depends on the shapes (there `attend` fixes the rows up itself)."""
    if not q.is_cpu:
        return False
    key = (q.dtype, dropout_p > 0)
    known = _CPU_ZERO_ROWS.get(key)
    if known is None:
        known = _CPU_ZERO_ROWS[key] = _probe_cpu_zero_rows(*key)
    return known


def _probe_cpu_zero_rows(dtype: torch.dtype, dropout: bool) -> bool:
    """Run SDPA on a tiny CPU input with one fully-masked query, with and without autograd:
    torch >= 2.5 returns zeros there (older versions NaN)."""
    allowed = torch.tensor([[True, True, False], [False, False, False]])  # (T=2, S=3)
    p = 0.5 if dropout else 0.0
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
            q, k, v = (torch.randn(1, 1, n, 4, dtype=dtype, requires_grad=True) for n in (2, 3, 3))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
            out.sum().backward()
            with torch.no_grad():
                plain = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
    except RuntimeError:
        return False
    grads_finite = all(bool(x.grad.isfinite().all()) for x in (q, k, v))
    return bool(out[0, 0, 1].eq(0).all() and plain[0, 0, 1].eq(0).all() and grads_finite)


def _attend_weights(q, k, v, mask, dropout_p):
    """The broadcasting path: explicit (B, H, T, S) scores and weights (Eq. 1)."""
    s, d_k = k.shape[-2], q.shape[-1]
    # Scale whichever is smaller: q (.., T, Dk) or the scores (.., T, S).
    if d_k <= s:
        scores = (q * d_k**-0.5) @ k.transpose(-1, -2)  # (B, H, T, Dk) @ (B, H, Dk, S)
    else:
        scores = q @ k.transpose(-1, -2) * d_k**-0.5  # (B, H, T, S)
    weights = masked_softmax(scores, mask)  # (B, H, T, S)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights  # (B, H, T, S) @ (B, H, S, Dv) -> (B, H, T, Dv)


def _attend_sdpa(q, k, v, mask, causal, dropout_p):
    """The fused path: `F.scaled_dot_product_attention` (whose bool mask means "may attend")."""
    if not causal:
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return _sdpa_masked(q, k, v, torch.logical_not(mask), dropout_p)  # 0/1 ints too
    t, s = q.shape[-2], k.shape[-2]
    if mask is None and t == s:
        # is_causal: no (T, S) mask is built, and no query can be fully masked.
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    if t == 1 and s >= 1:  # the single newest query sees every cached key
        return _attend_sdpa(q, k, v, mask, False, dropout_p)
    allowed = _causal_allowed(t, s, q.device)  # (T, S)
    if mask is None and t <= s:  # every query sees at least key 0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    if mask is not None:
        allowed = torch.logical_not(mask) & allowed  # (.., T, S)
    return _sdpa_masked(q, k, v, allowed, dropout_p)


def _sdpa_masked(q, k, v, allowed, dropout_p):
    """SDPA with a bool "may attend" mask, where some query may see no key at all."""
    if _native_zero_rows(q, dropout_p):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    # Fix-up for kernels that give NaN there: unmask fully-masked rows, then zero their output
    # (whose gradient is then zero, and finite). The reduction is over the mask's own broadcast
    # shape: (B, 1, 1, 1) for a padding mask, so it is cheap unless the mask is per-query.
    fully_masked = ~allowed.any(dim=-1, keepdim=True)  # (.., T|1, 1)
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=allowed | fully_masked, dropout_p=dropout_p
    )
    return out.masked_fill(fully_masked, 0.0)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Batch-first scaled dot-product attention (Vaswani et al. 2017, Section 3.2.1, Eq. 1),
    the fast path the Transformer layers call.

    q: (B, H, T, Dk), k: (B, H, S, Dk), v: (B, H, S, Dv), float.
    mask: bool (or 0/1 integers), broadcastable to (B, H, T, S), True = that key is hidden from
        that query, e.g. a (B, 1, 1, S) padding mask or a (T, S) pattern.
    causal: also hide the keys after each query. With T < S the queries are the *last* T of S
        positions (incremental decoding over a cached prefix): query i sees keys 0 .. i + S - T.
    dropout_p: dropout on the attention weights, applied whenever > 0 (pass 0.0 in eval mode).
    need_weights: also return the (B, H, T, S) weights (before dropout), e.g. for plots.

    Returns (out (B, H, T, Dv), weights or None). A query whose keys are all masked gets a zero
    vector and zero weights (finite gradients). Without `need_weights` this runs torch's fused
    `scaled_dot_product_attention` (is_causal=True where T == S and no other mask, so no (T, S)
    mask is built), except in two measured corners; with it, broadcasting. See the dispatch
    note above.
    """
    if _few_queries_inference(q, k, v, causal, need_weights, dropout_p):
        # Every query sees every key (a causal single query is the newest position).
        return _attend_few_queries(q, k, v, mask), None
    if not need_weights and not _broadcasting_is_faster(q, k, v):
        return _attend_sdpa(q, k, v, mask, causal, dropout_p), None
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.ne(0)
    if causal:
        future = ~_causal_allowed(q.shape[-2], k.shape[-2], q.device)  # (T, S)
        mask = future if mask is None else mask | future
    out, weights = _attend_weights(q, k, v, mask, dropout_p)
    return out, weights if need_weights else None


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
