"""`attend`: scaled dot-product attention dispatched to the fastest of four measured paths.

The same function as `transformer.attention.attention` (Vaswani et al. 2017, Eq. 1) with the
same mask meaning (True = hidden) and the same zero vector for a fully-masked query, computed:
- by torch's fused `F.scaled_dot_product_attention` (SDPA) by default: never slower than
  broadcasting, much faster on long sequences, and it never materialises the (T, S) weights;
  `is_causal=True` where T == S, so no (T, S) mask is built;
- by broadcasting (matmul, masked softmax, matmul) when the weights are asked for, and in one
  measured corner: one intra-op thread, autograd recording, T <= 8 queries over
  B·H·S >= 16384 keys, where it beats SDPA forward + backward;
- by two batched matrix products (`torch.bmm`) for beam search's steps on the CPU: T <= 8
  queries that each see every key, >= 1024 (batch, head, query) rows, nothing recorded for
  autograd, where it beats SDPA's flash kernel (greedy's 256 rows keep SDPA);
- by SDPA in float32 for bf16 / fp16 inputs on the CPU while autograd records (bf16 autocast
  training): the CPU's half-precision flash kernel is slower than float32 forward + backward,
  so q, k, v are cast up and the output cast back (more precise, too).
Whether this torch's CPU SDPA already gives fully-masked queries zeros (torch >= 2.5) is probed
once per (dtype, dropout); otherwise, and on accelerators, `attend` fixes those rows up itself.
Figures: `transformer bench attention --sweep`, `python scripts/micro_bench.py attend-one`,
docs/benchmarks.md (2-core CPU, torch 2.13).

`FusedAttention` is the drop-in for the layers' `ScaledDotProductAttention` that calls `attend`;
`use_fused_attention(model)` swaps it in.

Shape legend: B batch, H heads, T queries, S keys, Dk/Dv head dims.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transformer.attention import masked_softmax
from transformer.fast.swap import swap_class
from transformer.layers.mha import ScaledDotProductAttention

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


def _half_training_on_cpu(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """bf16 / fp16 on the CPU with autograd recording: SDPA runs faster in float32."""
    if not (q.is_cpu and q.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled()):
        return False
    return q.requires_grad or k.requires_grad or v.requires_grad


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
    mask is built), except in the measured corners above; with it, broadcasting. See the dispatch
    note above.
    """
    if _few_queries_inference(q, k, v, causal, need_weights, dropout_p):
        # Every query sees every key (a causal single query is the newest position).
        return _attend_few_queries(q, k, v, mask), None
    if not need_weights and _half_training_on_cpu(q, k, v):
        with torch.autocast("cpu", enabled=False):  # autocast would cast SDPA back to bf16
            out = _attend_sdpa(q.float(), k.float(), v.float(), mask, causal, dropout_p)
        return out.to(q.dtype), None
    if not need_weights and not _broadcasting_is_faster(q, k, v):
        return _attend_sdpa(q, k, v, mask, causal, dropout_p), None
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.ne(0)
    if causal:
        future = ~_causal_allowed(q.shape[-2], k.shape[-2], q.device)  # (T, S)
        mask = future if mask is None else mask | future
    out, weights = _attend_weights(q, k, v, mask, dropout_p)
    return out, weights if need_weights else None


class FusedAttention(ScaledDotProductAttention):
    """`ScaledDotProductAttention` computed by `attend` (same inputs, outputs and state)."""

    def forward(self, q, k, v, mask=None, causal=False, need_weights=False):
        p = self.p if self.training else 0.0
        return attend(q, k, v, mask=mask, causal=causal, dropout_p=p, need_weights=need_weights)


def use_fused_attention(model: nn.Module) -> int:
    """Make every `ScaledDotProductAttention` of `model` a `FusedAttention`; returns how many."""
    return swap_class(model, ScaledDotProductAttention, FusedAttention)
