"""The exercise's attention variants (transformer.attention) against independent references:
a plain-Python float64 loop (`reference_attention`, written here from Eq. 1 of the paper) and
torch's own `F.scaled_dot_product_attention`. Shape legend: B batch, H heads, N (= T) queries,
M (= S) keys, Dk/Dv head dims."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer import attention as A
from transformer.fast.attend import attend

# ------------------------------------------------------------------------------------------
# The independent reference: one query at a time, one key at a time, with math.exp.
# ------------------------------------------------------------------------------------------


def reference_attention(q, k, v, mask):
    """q (B, H, T, Dk), k (B, H, S, Dk), v (B, H, S, Dv) float tensors; mask broadcastable to
    (B, H, T, S), True = hidden (or None). Returns (out (B, H, T, Dv), weights (B, H, T, S)) as
    float64 numpy arrays; a query with no visible key gets zeros."""
    q, k, v = (x.detach().double().numpy() for x in (q, k, v))
    b, h, t, d_k = q.shape
    s, d_v = k.shape[2], v.shape[3]
    hidden = np.zeros((b, h, t, s), bool)
    if mask is not None:
        hidden = np.broadcast_to(mask.detach().bool().numpy(), (b, h, t, s))
    out, weights = np.zeros((b, h, t, d_v)), np.zeros((b, h, t, s))
    for bi in range(b):
        for hi in range(h):
            for i in range(t):
                seen = [j for j in range(s) if not hidden[bi, hi, i, j]]
                if not seen:
                    continue
                score = {j: sum(q[bi, hi, i] * k[bi, hi, j]) / math.sqrt(d_k) for j in seen}
                top = max(score.values())
                total = sum(math.exp(x - top) for x in score.values())
                for j in seen:
                    w = math.exp(score[j] - top) / total
                    weights[bi, hi, i, j] = w
                    out[bi, hi, i] += w * v[bi, hi, j]
    return out, weights


def tolerance(dtype):
    return {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-9}


def close(actual, expected, dtype):
    actual = actual.detach().double().numpy() if torch.is_tensor(actual) else actual
    np.testing.assert_allclose(actual, expected, **tolerance(dtype))


@st.composite
def exercise_inputs(draw, max_side=5):
    """Random exercise-layout inputs: Q (B, N, H, Dk), K (B, M, H, Dk), V (B, M, H, Dv),
    mask (B, N, M) as bool or 0/1 integers, with a mix of sparse, dense and full masks."""
    b, n, m, h = (draw(st.integers(1, max_side)) for _ in range(4))
    d_k, d_v = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    p_mask = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    Q = torch.randn(b, n, h, d_k, generator=gen, dtype=dtype)
    K = torch.randn(b, m, h, d_k, generator=gen, dtype=dtype)
    V = torch.randn(b, m, h, d_v, generator=gen, dtype=dtype)
    mask = torch.rand(b, n, m, generator=gen) < p_mask
    if draw(st.booleans()):
        mask = mask.long()  # the exercise's generators pass torch.randint 0/1 integers
    return Q, K, V, mask


def reference_exercise(Q, K, V, mask):
    """The reference in the exercise's (B, N, H, D) layout: returns (B, N, H, Dv) numpy."""
    out, _ = reference_attention(
        Q.transpose(1, 2), K.transpose(1, 2), V.transpose(1, 2), mask.bool().unsqueeze(1)
    )
    return out.transpose(0, 2, 1, 3)


# ------------------------------------------------------------------------------------------
# Loops and broadcasting variants.
# ------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(exercise_inputs(max_side=3))
def test_slow_loops_match_reference(inputs):
    Q, K, V, mask = inputs
    expected = reference_exercise(Q, K, V, mask)  # (B, N, H, Dv)
    close(A.slow_multi_head_attention(Q, K, V, mask), expected, Q.dtype)
    close(A.slow_heads_attention(Q[0], K[0], V[0], mask[0]), expected[0], Q.dtype)
    queries = A.slow_queries_attention(Q[0, :, 0], K[0, :, 0], V[0, :, 0], mask[0])
    close(queries, expected[0, :, 0], Q.dtype)
    one = A.scale_dot_product_attention(Q[0, :1, 0], K[0, :, 0], V[0, :, 0], mask[0, :1])
    close(one, expected[0, :1, 0], Q.dtype)


@settings(max_examples=40, deadline=None)
@given(exercise_inputs())
def test_fast_variants_match_loops(inputs):
    Q, K, V, mask = inputs
    slow = A.slow_multi_head_attention(Q, K, V, mask)  # (B, N, H, Dv)
    tol = tolerance(Q.dtype)
    for fast in (A.multi_head_attention, A.multi_head_attention_einops):
        torch.testing.assert_close(fast(Q, K, V, mask), slow, **tol)
    torch.testing.assert_close(A.heads_attention(Q[0], K[0], V[0], mask[0]), slow[0], **tol)
    got = A.queries_attention(Q[0, :, 0], K[0, :, 0], V[0, :, 0], mask[0])
    torch.testing.assert_close(got, slow[0, :, 0], **tol)


@settings(max_examples=40, deadline=None)
@given(exercise_inputs())
def test_fast_variants_match_torch_sdpa(inputs):
    """torch's SDPA takes the opposite mask meaning (True = may attend); compare on the queries
    that see at least one key (what SDPA returns for the others is version-dependent)."""
    Q, K, V, mask = inputs
    allowed = mask.eq(0).unsqueeze(1)  # (B, 1, N, M), True = may attend
    expected = F.scaled_dot_product_attention(
        Q.transpose(1, 2), K.transpose(1, 2), V.transpose(1, 2), attn_mask=allowed
    ).transpose(1, 2)  # (B, N, H, Dv)
    seen = allowed.squeeze(1).any(-1)  # (B, N)
    for fast in (A.multi_head_attention, A.multi_head_attention_einops):
        got = fast(Q, K, V, mask)
        torch.testing.assert_close(got[seen], expected[seen], **tolerance(Q.dtype))
        assert got[~seen].eq(0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_integer_masks_mean_the_same_as_bool_masks(dtype):
    Q, K, V = torch.randn(2, 4, 3, 5, dtype=dtype), *torch.randn(2, 2, 6, 3, 5, dtype=dtype)
    mask = torch.randint(0, 2, (2, 4, 6))
    for fn in (A.slow_multi_head_attention, A.multi_head_attention, A.multi_head_attention_einops):
        assert torch.equal(fn(Q, K, V, mask), fn(Q, K, V, mask.bool()))
    expected = reference_exercise(Q, K, V, mask)
    close(A.multi_head_attention(Q, K, V, mask.int()), expected, dtype)


# ------------------------------------------------------------------------------------------
# Fully-masked queries: zero output, finite gradients, in every variant.
# ------------------------------------------------------------------------------------------


def _attend_exercise(path):
    """The model's batch-first attention wrapped to the exercise's (B, N, H, D) layout: the
    reference core's `attention`, or the fast engine's `attend` on one of its code paths."""

    def run(Q, K, V, mask):
        q, k, v = Q.transpose(1, 2), K.transpose(1, 2), V.transpose(1, 2)  # (B, H, N|M, D)
        m = mask.unsqueeze(1)  # (B, 1, N, M)
        if path == "reference":
            out, _ = A.attention(q, k, v, m)
        else:
            out, _ = attend(q, k, v, m, causal=path == "causal", need_weights=path == "weights")
        return out.transpose(1, 2)

    return run


EXERCISE_VARIANTS = {
    "slow_multi_head_attention": A.slow_multi_head_attention,
    "multi_head_attention": A.multi_head_attention,
    "multi_head_attention_einops": A.multi_head_attention_einops,
    "slow_heads_attention": lambda Q, K, V, m: torch.stack(
        [A.slow_heads_attention(*x) for x in zip(Q, K, V, m)]
    ),
    "heads_attention": lambda Q, K, V, m: torch.stack(
        [A.heads_attention(*x) for x in zip(Q, K, V, m)]
    ),
    "slow_queries_attention": lambda Q, K, V, m: torch.stack(
        [A.slow_queries_attention(Q[0, :, h], K[0, :, h], V[0, :, h], m[0]) for h in range(3)], 1
    )[None],
    "queries_attention": lambda Q, K, V, m: torch.stack(
        [A.queries_attention(Q[0, :, h], K[0, :, h], V[0, :, h], m[0]) for h in range(3)], 1
    )[None],
    "attention (reference core)": _attend_exercise("reference"),
    "attend (sdpa)": _attend_exercise("sdpa"),
    "attend (weights)": _attend_exercise("weights"),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(EXERCISE_VARIANTS))
def test_fully_masked_queries_give_zeros_and_finite_gradients(name, dtype):
    fn = EXERCISE_VARIANTS[name]
    Q, K, V = (torch.randn(1, 4, 3, 5, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = torch.rand(1, 4, 4) < 0.5
    mask[0, 1] = True  # query 1 sees nothing
    mask[0, 2] = False  # query 2 sees everything
    out = fn(Q, K, V, mask)
    assert out[0, 1].eq(0).all()
    close(out, reference_exercise(Q, K, V, mask), dtype)
    (out * torch.randn_like(out)).sum().backward()
    for x in (Q, K, V):
        assert x.grad.isfinite().all()
    assert Q.grad[0, 1].eq(0).all()  # a query that sees nothing has no influence


@pytest.mark.parametrize("name", ["multi_head_attention", "multi_head_attention_einops"])
def test_gradients_match_the_loops(name):
    """Backward of the broadcasting variants equals backward of the loops (float64)."""
    inputs = [torch.randn(2, 3, 2, 4, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    mask = torch.rand(2, 3, 3) < 0.5
    mask[1, 0] = True
    grad_out = torch.randn(2, 3, 2, 4, dtype=torch.float64)
    expected = torch.autograd.grad(A.slow_multi_head_attention(*inputs, mask), inputs, grad_out)
    got = torch.autograd.grad(EXERCISE_VARIANTS[name](*inputs, mask), inputs, grad_out)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 7), st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 999))
def test_masked_softmax_is_softmax_over_visible_entries(rows, cols, p_mask, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, cols, generator=gen, dtype=torch.float64) * 10
    mask = torch.rand(rows, cols, generator=gen) < p_mask
    weights = A.masked_softmax(scores, mask)
    for r in range(rows):
        seen = [c for c in range(cols) if not mask[r, c]]
        expected = np.zeros(cols)
        if seen:
            exps = [math.exp(scores[r, c].item() - scores[r, seen].max().item()) for c in seen]
            expected[seen] = np.array(exps) / sum(exps)
        np.testing.assert_allclose(weights[r].numpy(), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("t, s", [(5, 5), (2, 6), (1, 4)])
def test_batch_first_attention_with_future_mask_matches_the_loop(t, s):
    """The reference core's `attention` with a padding mask and `future_mask` (the T queries
    are the last T of S positions) against the float64 loop, whose mask is written out here:
    key j is hidden from query i when j > i + S - T or j is padding."""
    gen = torch.Generator().manual_seed(t * 10 + s)
    q = torch.randn(2, 3, t, 4, generator=gen, dtype=torch.float64)
    k, v = (torch.randn(2, 3, s, 4, generator=gen, dtype=torch.float64) for _ in "kv")
    pad = torch.zeros(2, 1, 1, s, dtype=torch.bool)
    pad[1, ..., 0] = True  # key 0 of sequence 1 is padding: its query 0 may see nothing
    mask = pad | A.future_mask(t, s)
    written = torch.tensor([[j > i + s - t for j in range(s)] for i in range(t)]) | pad
    out, weights = A.attention(q, k, v, mask)
    expected_out, expected_w = reference_attention(q, k, v, written)
    np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), expected_w, rtol=1e-12, atol=1e-12)
