"""`transformer.fast.packed`: oneDNN-packed linear maps against the closed form x Wᵀ + b
(in float64), against plain `nn.Linear` models, and through decoding; repacking after the
weights change, the autograd fall-back, copies, and the no-oneDNN fall-back."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import transformer.fast.attend as A
from transformer.config import ModelConfig
from transformer.decoding import SpecialIds, beam_search, greedy_decode
from transformer.fast import optimize
from transformer.fast import packed as P
from transformer.models import GPT, Transformer

needs_onednn = pytest.mark.skipif(
    not P.packing_available(), reason="this torch has no usable oneDNN linear kernel"
)


def closed_form(x, weight, bias):
    """x Wᵀ + b in float64: the independent reference."""
    out = x.double() @ weight.detach().double().T
    return out if bias is None else out + bias.detach().double()


def random_linear(n_in, n_out, bias, seed=0):
    torch.manual_seed(seed)
    layer = nn.Linear(n_in, n_out, bias=bias)
    nn.init.normal_(layer.weight)
    if bias:
        nn.init.normal_(layer.bias)
    return layer


@needs_onednn
@pytest.mark.parametrize("lead", [(1,), (3,), (64,), (300,), (5, 7), (2, 1, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_linear_matches_closed_form(lead, bias):
    layer = P.PackedLinear.from_linear(random_linear(48, 40, bias))
    x = torch.randn(*lead, 48)
    with torch.inference_mode():
        y = layer(x)
    rows = x.numel() // 48
    # The packed kernel ran, except for a single row (P.MIN_ROWS), which F.linear computes.
    assert (layer._packed_weight._packed is not None) == (rows >= P.MIN_ROWS)
    assert y.shape == (*lead, 40) and y.dtype == torch.float32
    torch.testing.assert_close(
        y.double(), closed_form(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-4
    )


@needs_onednn
def test_a_single_row_runs_f_linear_then_more_rows_the_packed_kernel():
    layer = P.PackedLinear.from_linear(random_linear(48, 40, True))
    one, two = torch.randn(1, 1, 48), torch.randn(2, 48)
    with torch.inference_mode():
        y1 = layer(one)
        assert layer._packed_weight._packed is None  # one row: not packed
        y2 = layer(two)
        assert layer._packed_weight._packed is not None
    for x, y in ((one, y1), (two, y2)):
        torch.testing.assert_close(
            y.double(), closed_form(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-4
        )


@needs_onednn
def test_non_contiguous_input():
    layer = P.PackedLinear.from_linear(random_linear(16, 8, True))
    x = torch.randn(16, 10).T  # (10, 16), transposed strides
    with torch.no_grad():
        y = layer(x)
    torch.testing.assert_close(
        y.double(), closed_form(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-4
    )


@needs_onednn
def test_repacks_when_the_weight_changes_in_place():
    plain = random_linear(32, 24, True)
    layer = P.PackedLinear.from_linear(plain)
    x = torch.randn(6, 32)
    with torch.inference_mode():
        layer(x)
    with torch.no_grad():
        layer.weight.mul_(-2.0).add_(0.5)  # as an optimizer step would
    with torch.inference_mode():
        y = layer(x)
    torch.testing.assert_close(
        y.double(), closed_form(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-4
    )
    other = random_linear(32, 24, True, seed=3)
    layer.load_state_dict(other.state_dict())  # copies into the same Parameters
    with torch.inference_mode():
        y = layer(x)
    torch.testing.assert_close(
        y.double(), closed_form(x, other.weight, other.bias), rtol=1e-5, atol=1e-4
    )


def test_autograd_falls_back_to_nn_linear():
    plain = random_linear(12, 5, True)
    packed = P.PackedLinear.from_linear(copy.deepcopy(plain))
    x = torch.randn(4, 12, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    plain(x).square().sum().backward()
    packed(x2).square().sum().backward()
    torch.testing.assert_close(x2.grad, x.grad)
    torch.testing.assert_close(packed.weight.grad, plain.weight.grad)
    torch.testing.assert_close(packed.bias.grad, plain.bias.grad)


def test_other_dtypes_fall_back():
    layer = P.PackedLinear.from_linear(random_linear(8, 3, True).double())
    x = torch.randn(2, 8, dtype=torch.float64)
    with torch.inference_mode():
        y = layer(x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, closed_form(x, layer.weight, layer.bias))


def test_inference_tensor_weights_fall_back():
    """A weight made in inference mode has no version counter: never packed, still right."""
    with torch.inference_mode():
        weight, bias = torch.randn(6, 5), torch.randn(6)
        x = torch.randn(4, 5)
        packed = P.PackedWeight(weight, bias)
        y = packed(x)
    assert packed._packed is None
    torch.testing.assert_close(y.double(), closed_form(x, weight, bias), rtol=1e-5, atol=1e-5)


def tiny_config(**extra):
    return ModelConfig.preset(
        "tiny", src_vocab_size=40, tgt_vocab_size=40, d_model=32, d_ff=64, n_heads=4, **extra
    )


def test_pack_for_inference_keeps_parameters_and_state_dict():
    torch.manual_seed(0)
    model = Transformer(tiny_config()).eval()
    n_linear = sum(type(m) is nn.Linear for m in model.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [id(p) for p in model.parameters()]
    count = P.pack_for_inference(model, min_weights=0)
    if not P.packing_available():
        assert count == 0
        return
    assert count == n_linear + 1  # and the tied output layer
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert [id(p) for p in model.parameters()] == params  # shared, not copied
    after = model.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    fresh = Transformer(tiny_config())
    fresh.load_state_dict(after)  # a packed model's checkpoint loads into a plain one


@pytest.mark.parametrize("tied", [True, False])
def test_packed_transformer_matches_plain(tied):
    torch.manual_seed(1)
    plain = Transformer(tiny_config(tie_output=tied, share_embeddings=tied)).eval()
    packed = copy.deepcopy(plain)
    P.pack_for_inference(packed, min_weights=0)
    src, tgt = torch.randint(3, 40, (3, 7)), torch.randint(3, 40, (3, 5))
    with torch.inference_mode():
        expected, got = plain(src, tgt), packed(src, tgt)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if P.packing_available():
        assert isinstance(packed.logits, P.PackedWeight) and packed.logits._packed is not None
        if not tied:  # the untied output layer is packed once, as model.logits
            assert type(packed.output_proj) is nn.Linear
    clone = copy.deepcopy(packed)  # the opaque packed tensors are dropped and rebuilt
    with torch.inference_mode():
        torch.testing.assert_close(clone(src, tgt), expected, rtol=1e-5, atol=1e-5)


def test_packed_gpt_matches_plain():
    torch.manual_seed(2)
    plain = GPT(tiny_config()).eval()
    packed = copy.deepcopy(plain)
    P.pack_for_inference(packed, min_weights=0)
    idx = torch.randint(0, 40, (2, 9))
    with torch.inference_mode():
        torch.testing.assert_close(packed(idx), plain(idx), rtol=1e-5, atol=1e-5)


def test_packed_decoding_gives_the_same_translations(monkeypatch):
    """The fast engine with packed weights and the single-query attention path (forced on for
    this small batch) against the reference core: the same tokens, the same scores."""

    torch.manual_seed(5)
    cfg = tiny_config(dropout=0.0, share_embeddings=False, tie_output=False)
    plain = Transformer(cfg).eval()
    packed = optimize(copy.deepcopy(plain))
    P.pack_for_inference(packed, min_weights=0)
    ids = SpecialIds(bos=1, eos=2, pad=0)
    src = torch.randint(3, 40, (4, 6))
    src[1, 4:] = 0
    for decode in (
        lambda m: [[h] for h in greedy_decode(m, src, ids, max_len_offset=8)],
        lambda m: beam_search(m, src, ids, beam_size=3, alpha=0.6, n_best=2, max_len_offset=8),
    ):
        expected = decode(plain)
        monkeypatch.setattr(A, "_BMM_MIN_ROWS", 1)  # batched matrix products
        got = decode(packed)
        for e_list, g_list in zip(expected, got, strict=True):
            assert [h.tokens for h in g_list] == [h.tokens for h in e_list]
            for e, g in zip(e_list, g_list, strict=True):
                assert g.score == pytest.approx(e.score, abs=1e-4)


@needs_onednn
def test_only_large_enough_weights_are_packed():
    """The default threshold leaves the 256 x 256 projections of the Multi30k-sized model on
    addmm and packs the fused QKV, the FFN and the output layer."""
    cfg = ModelConfig.preset("base", src_vocab_size=8000, tgt_vocab_size=8000, d_model=256)
    cfg = cfg.replace(n_heads=4, d_ff=1024, n_encoder_layers=1, n_decoder_layers=1)
    model = Transformer(cfg)
    count = P.pack_for_inference(model)
    packed = {n for n, m in model.named_modules() if isinstance(m, P.PackedLinear)}
    plain = {n for n, m in model.named_modules() if type(m) is nn.Linear}
    assert all(m.weight.numel() >= P.MIN_WEIGHTS for n, m in model.named_modules() if n in packed)
    assert all(m.weight.numel() < P.MIN_WEIGHTS for n, m in model.named_modules() if n in plain)
    assert (
        "decoder_layers.0.self_attn.qkv_proj" in packed and "decoder_layers.0.ffn.linear2" in packed
    )
    assert "decoder_layers.0.self_attn.out_proj" in plain
    assert isinstance(model.logits, P.PackedWeight) and count == len(packed) + 1


def test_without_onednn_nothing_changes(monkeypatch):
    monkeypatch.setattr(P, "packing_available", lambda: False)
    model = Transformer(tiny_config()).eval()
    assert P.pack_for_inference(model, min_weights=0) == 0
    assert "logits" not in vars(model)  # the reference method stays
    layer = P.PackedLinear.from_linear(random_linear(8, 4, True))
    x = torch.randn(3, 8)
    with torch.inference_mode():
        y = layer(x)
    assert layer._packed_weight._packed is None  # never packed
    torch.testing.assert_close(
        y.double(), closed_form(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5
    )


def test_probe_agrees_with_the_build():
    """The probe says yes exactly when torch has oneDNN and its two linear ops (present and
    working in every x86 and arm64 CPU build of torch 2.4 and later)."""
    has_ops = hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(
        torch.ops.mkldnn, "_linear_pointwise"
    )
    assert P.packing_available() == (torch.backends.mkldnn.is_available() and has_ops)
