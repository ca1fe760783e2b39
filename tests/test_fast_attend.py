"""`transformer.fast.attend.attend`, the fast path, against the float64 loop reference, torch's
SDPA and numerical gradients, on every code path (fused SDPA with is_causal / a small causal
mask / a padding or full mask, the fix-up for kernels without zero rows, and the weights path).
Shape legend: B batch, H heads, T queries, S keys, Dk/Dv head dims."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import transformer.fast.attend as A
from test_attention import close, reference_attention
from transformer.attention import attention as reference_core_attention


def causal_reference_mask(t, s):
    """(T, S) bool by a loop: query i is position i + S - T and sees keys 0 .. i + S - T."""
    return torch.tensor([[j > i + s - t for j in range(s)] for i in range(t)])


@st.composite
def attend_inputs(draw):
    b, h, t, s = (draw(st.integers(1, 4)) for _ in range(4))
    d_k, d_v = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    q = torch.randn(b, h, t, d_k, generator=gen, dtype=dtype)
    k = torch.randn(b, h, s, d_k, generator=gen, dtype=dtype)
    v = torch.randn(b, h, s, d_v, generator=gen, dtype=dtype)
    kind = draw(st.sampled_from(["none", "padding", "full", "pattern"]))
    p = draw(st.sampled_from([0.2, 0.6, 1.0]))
    shape = {"none": None, "padding": (b, 1, 1, s), "full": (b, h, t, s), "pattern": (t, s)}[kind]
    mask = None if shape is None else torch.rand(shape, generator=gen) < p
    if mask is not None and draw(st.booleans()):
        mask = mask.to(torch.uint8)
    return q, k, v, mask, draw(st.booleans())


def combined_mask(mask, causal, t, s):
    if not causal:
        return mask
    future = causal_reference_mask(t, s)
    return future if mask is None else mask.bool() | future


@settings(max_examples=40, deadline=None)
@given(attend_inputs())
def test_attend_matches_reference(inputs):
    q, k, v, mask, causal = inputs
    t, s = q.shape[-2], k.shape[-2]
    expected, expected_weights = reference_attention(q, k, v, combined_mask(mask, causal, t, s))
    out, weights = A.attend(q, k, v, mask, causal=causal)
    assert weights is None
    close(out, expected, q.dtype)
    out, weights = A.attend(q, k, v, mask, causal=causal, need_weights=True)
    close(out, expected, q.dtype)
    close(weights, expected_weights, q.dtype)
    sums = weights.sum(-1)  # (B, H, T): 1, or 0 where the query sees no key
    visible = torch.from_numpy(expected_weights.sum(-1) > 0)
    torch.testing.assert_close(sums, visible.to(sums.dtype), atol=1e-5, rtol=0)


@settings(max_examples=25, deadline=None)
@given(inputs=attend_inputs())
def test_attend_fixup_path_matches_reference(inputs):
    """The path for kernels that return NaN on fully-masked rows (CUDA, torch < 2.5), forced,
    against such a kernel."""
    q, k, v, mask, causal = inputs
    t, s = q.shape[-2], k.shape[-2]
    expected, _ = reference_attention(q, k, v, combined_mask(mask, causal, t, s))
    with pytest.MonkeyPatch.context() as mp:  # undone after each example
        use_legacy_sdpa(mp)
        out, _ = A.attend(q, k, v, mask, causal=causal)
    close(out, expected, q.dtype)


@settings(max_examples=40, deadline=None)
@given(inputs=attend_inputs(), grad_mode=st.sampled_from(["inference", "no_grad", "plain"]))
def test_few_queries_decoding_path_matches_reference(inputs, grad_mode):
    """A decoding step without autograd: T <= 4 queries that see every key (not causal, or the
    newest position alone with causal=True), through the batched-matrix-product path, taken,
    against the loop reference."""
    q, k, v, mask, causal = inputs
    if causal:  # the single newest query: causal=True hides nothing from it
        q = q[:, :, -1:]  # (B, H, 1, Dk)
        if mask is not None:
            mask = mask[:, :, -1:] if mask.dim() == 4 else mask[-1:]
    t, s = q.shape[-2], k.shape[-2]
    expected, _ = reference_attention(q, k, v, combined_mask(mask, causal, t, s))
    mode = {"inference": torch.inference_mode, "no_grad": torch.no_grad}.get(grad_mode)
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(A, "_BMM_MIN_ROWS", 1)  # tiny inputs take the path too
        few = A._attend_few_queries
        mp.setattr(A, "_attend_few_queries", lambda *a: calls.append(1) or few(*a))
        with mode() if mode else torch.enable_grad():
            out, weights = A.attend(q, k, v, mask, causal=causal)
    assert calls and weights is None
    close(out, expected, q.dtype)


def test_few_queries_path_only_for_beam_sized_inference():
    q, k, v = (torch.randn(256, 4, n, 4, requires_grad=True) for n in (1, 5, 5))
    few = A._few_queries_inference
    with torch.no_grad():
        assert not few(q[:255], k, v, False, False, 0.0)  # 1020 rows: SDPA
    assert not few(q, k, v, False, False, 0.0)  # autograd records
    with torch.no_grad():
        assert few(q, k, v, True, False, 0.0)  # one causal query sees every key
        assert not few(q, k, v, False, True, 0.0)  # need_weights
        assert not few(q, k, v, False, False, 0.1)  # dropout
        grouped = torch.randn(64, 4, 4, 4)  # 4 beams x 64 sentences x 4 heads = 1024 rows
        assert few(grouped, k[:64], v[:64], False, False, 0.0)
        assert not few(grouped, k[:64], v[:64], True, False, 0.0)  # causal over 4 queries
        assert not few(grouped[:63], k[:63], v[:63], False, False, 0.0)  # 1008 rows
        assert not few(torch.randn(32, 4, 9, 4), k[:32], v[:32], False, False, 0.0)  # T > 8


def legacy_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
    """SDPA as torch < 2.5 computed it (and as some accelerator kernels still do): a query with
    no visible key gets NaN (softmax over all -inf), forward and backward."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if is_causal:
        attn_mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return F.dropout(scores.softmax(-1), dropout_p) @ v


def use_legacy_sdpa(mp):
    """Run attend's fix-up path against a kernel that really returns NaN there."""
    mp.setattr(A, "_native_zero_rows", lambda *args: False)
    mp.setattr(F, "scaled_dot_product_attention", legacy_sdpa)


@pytest.mark.parametrize("t", [1, 3, 6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_causal_matches_torch_sdpa(t, dtype):
    """T == S against torch's is_causal; T < S (cached prefix) against the last T rows of it."""
    q, k, v = (torch.randn(2, 3, 6, 8, dtype=dtype) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)[:, :, -t:]
    for need_weights in (False, True):
        out, _ = A.attend(q[:, :, -t:], k, v, causal=True, need_weights=need_weights)
        torch.testing.assert_close(out, expected)


def test_causal_without_padding_builds_no_mask(monkeypatch):
    """T == S uses is_causal=True, T == 1 needs no mask: no (T, S) tensor is materialised."""

    def refuse(*args):
        raise AssertionError("a (T, S) causal mask was built")

    monkeypatch.setattr(A, "_causal_allowed", refuse)
    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
    A.attend(q, k, v, causal=True)
    A.attend(q[:, :, -1:], k, v, causal=True)
    A.attend(q[:, :, -1:], k, v, torch.rand(2, 1, 1, 16) < 0.5, causal=True)


@pytest.mark.parametrize("fixup", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("case", ["padding", "causal+padding", "causal T>S", "full"])
def test_fully_masked_queries_zero_with_finite_gradients(case, need_weights, fixup, monkeypatch):
    if fixup:
        use_legacy_sdpa(monkeypatch)
    t, s = (6, 4) if case == "causal T>S" else (4, 4)
    q, k, v = (torch.randn(2, 2, n, 3, dtype=torch.float64, requires_grad=True) for n in (t, s, s))
    mask, causal = None, case.startswith("causal")
    if case in ("padding", "causal+padding"):
        mask = torch.zeros(2, 1, 1, s, dtype=torch.bool)
        mask[1] = True  # sequence 1 is all padding
        mask[0, ..., 0] = True  # key 0 of sequence 0 is padding: causal query 0 sees nothing
    elif case == "full":
        mask = torch.rand(2, 2, t, s) < 0.4
        mask[0, 1, 2] = True
    out, weights = A.attend(q, k, v, mask, causal=causal, need_weights=need_weights)
    full = combined_mask(mask, causal, t, s)
    dead = torch.broadcast_to(full, (2, 2, t, s)).all(-1)  # (B, H, T)
    assert dead.any()
    assert out[dead].eq(0).all()
    if need_weights:
        assert weights[dead].eq(0).all()
    close(out, reference_attention(q, k, v, full)[0], q.dtype)
    (out * torch.randn_like(out)).sum().backward()
    assert all(x.grad.isfinite().all() for x in (q, k, v))


def test_legacy_kernel_really_gives_nan():
    """The fix-up tests above are meaningful only if the emulated kernel fails without them."""
    q = torch.randn(1, 1, 2, 4)
    out = legacy_sdpa(q, q, q, attn_mask=torch.tensor([[True, True], [False, False]]))
    assert out[0, 0, 1].isnan().all()


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_match_numerical_differentiation(causal, need_weights):
    q, k, v = (torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.tensor([False, False, True]).view(1, 1, 1, 3)

    def fn(q, k, v):
        return A.attend(q, k, v, mask, causal=causal, need_weights=need_weights)[0]

    assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize("need_weights", [False, True])
def test_dropout_is_unbiased_and_off_at_zero(need_weights):
    """Inverted dropout on the weights: with V = 1 every output is sum_j keep_j w_j / (1 - p),
    whose mean is 1 (the weights sum to 1); at p = 0 the output is deterministic."""
    q, k = torch.randn(64, 4, 16, 8), torch.randn(64, 4, 16, 8)
    v = torch.ones(64, 4, 16, 8)
    mask = torch.rand(64, 1, 1, 16) < 0.3
    mask[..., 0] = False
    eval_a, _ = A.attend(q, k, v, mask, dropout_p=0.0, need_weights=need_weights)
    eval_b, _ = A.attend(q, k, v, mask, dropout_p=0.0, need_weights=need_weights)
    assert torch.equal(eval_a, eval_b)
    torch.testing.assert_close(eval_a, torch.ones_like(eval_a))
    train, weights = A.attend(q, k, v, mask, dropout_p=0.5, need_weights=need_weights)
    per_query = train[..., 0]  # (B, H, T): the Dv columns are equal when V = 1
    assert per_query.std() > 0.1  # dropout happened
    assert abs(per_query.mean().item() - 1.0) < 0.03  # ~8 standard errors
    if need_weights:  # the returned weights are the ones before dropout
        torch.testing.assert_close(weights.sum(-1), torch.ones(64, 4, 16))


def test_weights_only_when_asked():
    q, k, v = (torch.randn(2, 2, 5, 4) for _ in range(3))
    assert A.attend(q, k, v)[1] is None
    assert A.attend(q, k, v, causal=True, dropout_p=0.1)[1] is None
    weights = A.attend(q, k, v, causal=True, need_weights=True)[1]
    assert weights.shape == (2, 2, 5, 5)
    assert weights.triu(1).eq(0).all()


def test_probe_trusts_only_the_cpu_and_works_in_any_grad_mode():
    assert not A._native_zero_rows(torch.empty(1, device="meta"), 0.0)
    outside = A._probe_cpu_zero_rows(torch.float32, True)
    with torch.inference_mode():
        assert A._probe_cpu_zero_rows(torch.float32, True) == outside
    with torch.no_grad():
        assert A._probe_cpu_zero_rows(torch.float32, True) == outside


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    q, k, v = (torch.randn(2, 4, 33, 16) for _ in range(3))
    mask = torch.rand(2, 1, 1, 33) < 0.3
    mask[1] = True
    for causal in (False, True):
        expected, _ = A.attend(q, k, v, mask, causal=causal)
        got, _ = A.attend(q.cuda(), k.cuda(), v.cuda(), mask.cuda(), causal=causal)
        np.testing.assert_allclose(got.cpu().numpy(), expected.numpy(), atol=1e-4, rtol=1e-3)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_dispatch_follows_the_measured_crossover(one_thread, monkeypatch):
    """Broadcasting only for CPU + one thread + autograd + T <= 8 + B*H*S >= 16384."""
    calls = []
    weights_path = A._attend_weights
    monkeypatch.setattr(A, "_attend_weights", lambda *a: calls.append(1) or weights_path(*a))

    def path(t, s, grad=True):
        calls.clear()
        q = torch.randn(2, 8, t, 4, requires_grad=grad)
        k, v = torch.randn(2, 8, s, 4), torch.randn(2, 8, s, 4)
        A.attend(q, k, v)
        return "broadcasting" if calls else "sdpa"

    assert path(8, 1024) == "broadcasting"
    assert path(9, 1024) == "sdpa"
    assert path(8, 1023) == "sdpa"
    assert path(8, 1024, grad=False) == "sdpa"
    with torch.no_grad():
        assert path(8, 1024) == "sdpa"
    torch.set_num_threads(2)
    assert path(8, 1024) == "sdpa"


@pytest.mark.parametrize("causal", [False, True])
def test_crossover_path_is_correct(one_thread, causal):
    q = torch.randn(2, 8, 3, 4, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(2, 8, 1024, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    mask = torch.zeros(2, 1, 1, 1024, dtype=torch.bool)
    mask[1] = True  # sequence 1: nothing to see
    mask[0, ..., 500:] = True
    out, weights = A.attend(q, k, v, mask, causal=causal)
    assert weights is None
    expected, _ = reference_attention(
        q[:, :2], k[:, :2], v[:, :2], combined_mask(mask, causal, 3, 1024)
    )
    close(out[:, :2], expected, q.dtype)
    assert out[1].eq(0).all()
    (out * torch.randn_like(out)).sum().backward()
    assert all(x.grad.isfinite().all() for x in (q, k, v))


def sdpa_dtypes(monkeypatch) -> list[torch.dtype]:
    """Record the dtype torch's SDPA computes in (its output's: autocast may cast the
    inputs) at every call."""
    seen, sdpa = [], F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        out = sdpa(*args, **kwargs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return seen


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("autocast", [False, True])
def test_half_training_runs_sdpa_in_float32(dtype, causal, autocast, monkeypatch):
    """bf16 / fp16 on the CPU with autograd, under bf16 autocast or not: SDPA computes in
    float32 (the zero-row probe's calls included), the output and gradients keep the input's
    dtype and agree to half precision with the float64 loop (output) and the reference core's
    float64 autograd (gradients)."""
    seen = sdpa_dtypes(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=gen).to(dtype).requires_grad_() for _ in range(3))
    mask = torch.rand(2, 1, 1, 5, generator=gen) < 0.3
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out, _ = A.attend(q, k, v, mask, causal=causal)
    assert seen and set(seen) == {torch.float32} and out.dtype == dtype
    expected, _ = reference_attention(q, k, v, combined_mask(mask, causal, 5, 5))
    np.testing.assert_allclose(out.detach().double().numpy(), expected, atol=2e-2, rtol=2e-2)
    grad = torch.randn(out.shape, generator=gen)
    out.backward(grad.to(dtype))
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref, _ = reference_core_attention(q64, k64, v64, combined_mask(mask, causal, 5, 5))
    ref.backward(grad.double())
    for half, full in ((q, q64), (k, k64), (v, v64)):
        assert half.grad.dtype == dtype
        torch.testing.assert_close(half.grad.double(), full.grad, atol=5e-2, rtol=5e-2)


def test_half_without_autograd_keeps_its_dtype(monkeypatch):
    """Inference in bf16 and float32 training keep SDPA in their own dtype."""
    seen = sdpa_dtypes(monkeypatch)
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=torch.bfloat16) for _ in range(3))
    A.attend(q, k, v, causal=True)
    with torch.no_grad():
        A.attend(q.requires_grad_(), k, v, causal=True)
    A.attend(*(torch.randn(2, 3, 5, 8, requires_grad=True) for _ in range(3)), causal=True)
    assert seen == [torch.bfloat16, torch.bfloat16, torch.float32]
