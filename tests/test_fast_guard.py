"""The guard: the fast engine (`transformer.fast.optimize`) computes the reference core's
function. Random models and inputs, with padding and with fully-masked rows (a source that is
all padding), compared on training logits and gradients, greedy and beam search tokens and
scores, and GPT's logits, gradients and cached decoding.

Stated tolerance: in float64 the two agree to rounding (1e-10 absolute on logits, gradients
and scores; the same tokens); in float32 to `F32` (rtol 1e-4, atol 1e-5 on logits and
gradients, 1e-4 on scores; the same tokens on these seeds). The reference core is itself
checked against `nn.Transformer` (tests/test_model_reference.py) and the loops of the
exercise (tests/test_attention.py)."""

from __future__ import annotations

import copy

import pytest
import torch

import transformer.fast.attend as A
from transformer.config import ModelConfig
from transformer.decoding import SpecialIds, beam_search, generate, greedy_decode
from transformer.fast import optimize
from transformer.models import GPT, Transformer

PAD, BOS, EOS = 0, 1, 2
IDS = SpecialIds(bos=BOS, eos=EOS, pad=PAD)
F64 = dict(rtol=0.0, atol=1e-10)
F32 = dict(rtol=1e-4, atol=1e-5)
CONFIGS = {  # name -> overrides: the paper's post-norm, pre-norm, d_k != d_v, learned, untied
    "post-norm": dict(),
    "pre-norm": dict(norm_first=True, positional="learned"),
    "dk!=dv untied": dict(d_k=5, d_v=7, tie_output=False, share_embeddings=False),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


def pair(name: str, dtype: torch.dtype, model_cls=Transformer, seed: int = 0, **extra):
    """(reference model, optimized copy with the same weights), in eval mode."""
    values = dict(src_vocab_size=15, tgt_vocab_size=15, d_model=24, n_heads=3, d_ff=40)
    values.update(n_encoder_layers=2, n_decoder_layers=2, max_len=64, pad_id=PAD, dropout=0.0)
    torch.manual_seed(seed)
    cfg = ModelConfig.from_dict({**values, **CONFIGS[name], **extra})
    ref = model_cls(cfg).to(dtype).eval()
    return ref, optimize(copy.deepcopy(ref))


def batch(seed: int, rows: int = 5, s: int = 9, t: int = 7):
    """src (rows, s) with padding of several lengths and one row of padding only; tgt."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 15, (rows, s), generator=gen)
    tgt = torch.randint(3, 15, (rows, t), generator=gen)
    src[1, 4:], src[2, 1:], src[3, :] = PAD, PAD, PAD  # row 3: every query fully masked
    tgt[0, 5:] = PAD
    return src, tgt


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_training_logits_and_gradients(name, dtype):
    """Training mode (dropout 0, so both compute one function), autograd recording."""
    ref, fast = pair(name, dtype)
    tol = F64 if dtype == torch.float64 else F32
    src, tgt = batch(1)
    weight = torch.randn(*tgt.shape, ref.config.tgt_vocab_size, dtype=dtype)
    outs = []
    for model in (ref.train(), fast.train()):
        logits = model(src, tgt)
        (logits * weight).sum().backward()
        outs.append(logits)
    torch.testing.assert_close(outs[1], outs[0], **tol)
    expected, got = grads(ref), grads(fast)
    assert got.keys() == expected.keys() and len(got) > 10
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], **tol, msg=key)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_inference_logits_and_attention_weights(dtype):
    ref, fast = pair("post-norm", dtype)
    tol = F64 if dtype == torch.float64 else F32
    src, tgt = batch(2)
    with torch.inference_mode():
        expected, ew = ref(src, tgt, need_weights=True)
        got, gw = fast(src, tgt, need_weights=True)
        torch.testing.assert_close(fast(src, tgt), expected, **tol)
    torch.testing.assert_close(got, expected, **tol)
    for a, b in zip(ew.encoder + ew.decoder + ew.cross, gw.encoder + gw.decoder + gw.cross):
        torch.testing.assert_close(b, a, **tol)
    assert torch.all(gw.encoder[0][3] == 0)  # the all-padding source row: zero weights


def _same_hypotheses(expected, got, dtype) -> None:
    atol = 1e-10 if dtype == torch.float64 else 1e-4
    for e_list, g_list in zip(expected, got, strict=True):
        assert [h.tokens for h in g_list] == [h.tokens for h in e_list]
        for e, g in zip(e_list, g_list, strict=True):
            assert g.finished == e.finished
            assert g.logprob == pytest.approx(e.logprob, abs=atol)
            assert g.score == pytest.approx(e.score, abs=atol)


@pytest.mark.parametrize("dispatch", ["as shipped", "bmm path forced"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_greedy_and_beam_search(name, dtype, dispatch, monkeypatch):
    """The same tokens and scores from greedy decoding and beam search (beam 3, 2-best),
    cached, with sentences finishing at different steps and leaving the batch."""
    if dispatch == "bmm path forced":
        monkeypatch.setattr(A, "_BMM_MIN_ROWS", 1)  # this small batch takes it too
    ref, fast = pair(name, dtype, seed=5)
    src, _ = batch(3, rows=6)
    src[5, 2:] = PAD
    greedy = [[[h] for h in greedy_decode(m, src, IDS, max_len_offset=6)] for m in (ref, fast)]
    _same_hypotheses(*greedy, dtype)
    kwargs = dict(beam_size=3, alpha=0.6, n_best=2, max_len_offset=6)
    beams = [beam_search(m, src, IDS, **kwargs) for m in (ref, fast)]
    _same_hypotheses(*beams, dtype)
    uncached = beam_search(fast, src, IDS, **kwargs, use_cache=False)
    _same_hypotheses(beams[0], uncached, dtype)
    lengths = {len(h[0].tokens) for h in beams[0]}
    assert len(lengths) > 1  # sentences stop at different steps


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gpt_logits_gradients_and_cached_steps(dtype):
    ref, fast = pair("pre-norm", dtype, model_cls=GPT)
    tol = F64 if dtype == torch.float64 else F32
    idx = torch.randint(0, 15, (3, 10), generator=torch.Generator().manual_seed(4))
    outs = []
    for model in (ref.train(), fast.train()):
        logits = model(idx)
        logits.square().sum().backward()
        outs.append(logits)
    torch.testing.assert_close(outs[1], outs[0], **tol)
    for key, value in grads(ref).items():
        torch.testing.assert_close(grads(fast)[key], value, **tol, msg=key)
    with torch.inference_mode():
        full = ref.eval()(idx)
        cache = fast.eval().new_cache()
        steps = [fast(idx[:, :4], cache=cache)] + [
            fast(idx[:, i : i + 1], cache=cache) for i in range(4, 10)
        ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **tol)


def test_gpt_sampling_gives_the_same_tokens():
    """`generate` (cached, top-k sampling from one seeded generator) on both models."""
    ref, fast = pair("post-norm", torch.float64, model_cls=GPT, seed=6)
    prompt = torch.randint(0, 15, (3, 4), generator=torch.Generator().manual_seed(7))
    outs = [
        generate(m, prompt, 12, top_k=5, generator=torch.Generator().manual_seed(8))
        for m in (ref, fast)
    ]
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("rows", [1, 2])
def test_gpt_float32_sampling_one_and_two_rows_with_every_weight_packed(rows):
    """float32, every linear map packed where eligible (min_weights 0): one row runs F.linear
    (`fast.packed.MIN_ROWS`), two rows the packed kernel; the same tokens either way."""
    from transformer.fast import pack_for_inference

    ref, fast = pair("pre-norm", torch.float32, model_cls=GPT, seed=9)
    pack_for_inference(fast, min_weights=0)
    prompt = torch.randint(0, 15, (rows, 4), generator=torch.Generator().manual_seed(10))
    outs = [
        generate(m, prompt, 12, top_k=5, generator=torch.Generator().manual_seed(11))
        for m in (ref, fast)
    ]
    assert torch.equal(outs[0], outs[1])


def test_gpt_growing_cache_past_its_capacity_and_after_a_reorder():
    """The GPT's `GrowingKVCache`: 150 cached steps (the buffer grows 64 -> 128 -> 256) give
    the full forward's logits; a reorder of the rows, then more steps, those of the reordered
    batch."""
    from transformer.fast.cache import GrowingKVCache

    ref, fast = pair("pre-norm", torch.float64, model_cls=GPT, seed=12, max_len=160)
    idx = torch.randint(0, 15, (3, 150), generator=torch.Generator().manual_seed(13))
    with torch.inference_mode():
        full = ref(idx)
        cache = fast.new_cache()
        assert isinstance(cache, GrowingKVCache)
        steps = [fast(idx[:, :5], cache=cache)]
        steps += [fast(idx[:, i : i + 1], cache=cache) for i in range(5, 140)]
        torch.testing.assert_close(torch.cat(steps, dim=1), full[:, :140], **F64)
        order = torch.tensor([2, 0])
        cache.reorder(order)
        rest = [fast(idx[order, i : i + 1], cache=cache) for i in range(140, 150)]
        torch.testing.assert_close(torch.cat(rest, dim=1), full[order, 140:], **F64)
