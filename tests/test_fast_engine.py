"""The fast engine's pieces one at a time (`transformer.fast`): the cache against a plain
list-of-rows reference, beams sharing their source against repeated memory, the padding skip
against the padded computation, and what `optimize` keeps (parameters, state_dict keys,
checkpoints both ways). Float64, so "equal" means equal to rounding."""

from __future__ import annotations

import copy

import pytest
import torch

from transformer.cli import build_parser
from transformer.config import ModelConfig
from transformer.fast import PIECES, FastKVCache, optimize
from transformer.fast.beams import SharedSourceAttention, share_source
from transformer.fast.cache import LazyLayerCache
from transformer.fast.dropout import Dropout, use_fast_dropout
from transformer.fast.padding import SkipPaddingCrossAttention, SkipPaddingEncoderLayer
from transformer.layers import CrossAttention, LayerCache
from transformer.models import GPT, KVCache, Transformer

PAD = 0
TOL = 1e-12


def make(model_cls=Transformer, **overrides):
    values = dict(
        src_vocab_size=41,
        tgt_vocab_size=41,
        d_model=24,
        n_heads=3,
        d_ff=40,
        n_encoder_layers=2,
        n_decoder_layers=2,
        max_len=40,
        pad_id=PAD,
    )
    cfg = ModelConfig.from_dict({**values, **overrides})
    return model_cls(cfg).double().eval()


def ids(batch: int, length: int, vocab: int = 41) -> torch.Tensor:
    return torch.randint(1, vocab, (batch, length))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_layer_cache_reorders_like_select_then_cat(grad, lazy):
    """LayerCache (reference) and LazyLayerCache (fast) against a plain list-of-rows
    reference: appends, reorders (two in a row, composed), a read of k/v between them, with
    and without autograd recording."""
    gen = torch.Generator().manual_seed(3)
    cache = LazyLayerCache() if lazy else LayerCache()
    ref_k = ref_v = None  # ref: (B, H, L, D) by index + cat
    steps = [("append", 4), ("reorder", [3, 3, 0, 1]), ("append", 4), ("reorder", [1, 0, 2]),
             ("reorder", [2, 2, 0]), ("append", 3), ("read", None), ("reorder", [1, 0]),
             ("read", None), ("append", 2)]  # fmt: skip
    for op, arg in steps:
        if op == "append":
            k, v = (torch.randn(arg, 2, 1, 3, generator=gen, requires_grad=grad) for _ in "kv")
            got_k, got_v = cache.append(k, v)
            ref_k = k if ref_k is None else torch.cat([ref_k, k], dim=2)
            ref_v = v if ref_v is None else torch.cat([ref_v, v], dim=2)
            assert torch.equal(got_k, ref_k) and torch.equal(got_v, ref_v)
        elif op == "reorder":
            index = torch.tensor(arg)
            cache.reorder_rows(index, None) if lazy else cache.reorder(index)
            ref_k, ref_v = ref_k[index], ref_v[index]
        else:
            assert torch.equal(cache.k, ref_k) and torch.equal(cache.v, ref_v)
    if grad:  # the selection stays differentiable when autograd records it
        cache.k.sum().backward()


def test_shared_source_rejects_rows_that_do_not_share_memory_evenly():
    layer = CrossAttention(8, 2, 4, 4, 0.0)
    share_source(layer)
    with pytest.raises(ValueError, match="multiple of memory's"):
        layer(torch.randn(3, 1, 8), torch.randn(2, 5, 8))


def test_fast_cache_rejects_bad_indices():
    with pytest.raises(ValueError, match="memory_rows as a 1-D int64"):
        FastKVCache().reorder_rows(torch.tensor([0]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="index as a 1-D int64"):
        FastKVCache().reorder(torch.tensor([0], dtype=torch.int32))


@pytest.mark.parametrize("group", [2, 3])
def test_memory_shared_by_groups_equals_repeated_memory(group):
    """tgt rows b·G .. b·G + G - 1 on memory row b (beam search's beams of one sentence):
    the logits and the attention weights of the reference core on memory repeated G times,
    uncached and cached; the shared cache keeps one cross-attention row per sentence, and
    dropping a sentence (reorder_rows with a memory index) equals decoding the remaining ones
    afresh."""
    ref = make()
    model = optimize(copy.deepcopy(ref))
    src, tgt = ids(3, 5), ids(3 * group, 6)
    src[1, 2:] = PAD
    pad = src.eq(PAD)
    with torch.no_grad():
        memory = model.encode(src)
        rep_memory, rep_pad = memory.repeat_interleave(group, 0), pad.repeat_interleave(group, 0)
        logits, w = model.decode(tgt, memory, pad, need_weights=True)
        rep_logits, rep_w = ref.decode(tgt, rep_memory, rep_pad, need_weights=True)
        assert max_diff(logits, rep_logits) <= TOL
        for a, b in zip(w.decoder + w.cross, rep_w.decoder + rep_w.cross, strict=True):
            assert a.shape == b.shape and max_diff(a, b) <= TOL
        cache = model.new_cache()
        assert isinstance(cache, FastKVCache)
        first = model.decode(tgt[:, :4], memory, pad, cache)
        assert cache.layers[0].cross_k.size(0) == 3  # one row per sentence, not per beam
        keep = torch.tensor([0, 2])  # sentence 1 leaves; the beams of 2 swap their order
        rows = torch.tensor([*range(group), *range(3 * group - 1, 2 * group - 1, -1)])
        cache.reorder_rows(rows, keep)
        rest = model.decode(tgt[rows, 4:], memory[keep], pad[keep], cache)
        expected = ref(src[keep].repeat_interleave(group, 0), tgt[rows])
    assert max_diff(first, rep_logits[:, :4]) <= TOL
    assert max_diff(rest, expected[:, 4:]) <= TOL


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_skips_padding_without_autograd(norm_first):
    """Without autograd the optimized encoder runs its position-wise layers on the real tokens
    only, and so does the cross-attention's key/value projection: the memory at the real
    positions equals the reference's, and the logits are the same; the cross-attention keys
    are zero at the padded positions (never computed there)."""
    ref = make(norm_first=norm_first)
    model = optimize(copy.deepcopy(ref))
    assert isinstance(model.encoder_layers[0], SkipPaddingEncoderLayer)
    assert isinstance(model.decoder_layers[0].cross_attn, SkipPaddingCrossAttention)
    src, tgt = ids(4, 7), ids(4, 5)
    src[0, 2:], src[2, 5:], src[3, 1:] = PAD, PAD, PAD
    real = src.ne(PAD)
    with torch.no_grad():
        padded = ref.encode(src)
        skipped = model.encode(src)
        assert max_diff(skipped[real], padded[real]) <= TOL
        assert max_diff(model(src, tgt), ref(src, tgt)) <= TOL
        cache = model.new_cache()
        model.decode(tgt[:, :1], skipped, src.eq(PAD), cache)
    layer = model.decoder_layers[0].cross_attn
    dense_k = layer.kv_proj(padded)[..., : layer.n_heads * layer.d_k]  # (B, S, H·Dk)
    cross_k = cache.layers[0].cross_k.transpose(1, 2).flatten(2)  # (B, S, H·Dk)
    assert max_diff(cross_k[real], dense_k[real]) <= TOL and torch.all(cross_k[~real] == 0)


@pytest.mark.parametrize("model_cls", [Transformer, GPT])
def test_optimize_keeps_parameters_state_dict_and_checkpoints(model_cls, tmp_path):
    """Every piece keeps the parameters (the same tensors), the state_dict keys and values,
    and a checkpoint saved from either model loads into the other; applying it twice is
    harmless."""
    torch.manual_seed(0)
    ref = make(model_cls)
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    params = [id(p) for p in ref.parameters()]
    fast = optimize(ref)  # in place
    assert fast is ref and [id(p) for p in fast.parameters()] == params
    optimize(fast)
    after = fast.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    torch.save(after, tmp_path / "fast.pt")
    plain = make(model_cls)
    plain.load_state_dict(torch.load(tmp_path / "fast.pt"))
    again = optimize(make(model_cls))
    again.load_state_dict(plain.state_dict())
    assert all(torch.equal(again.state_dict()[k], v) for k, v in before.items())


def test_each_piece_applies_alone():
    """Any one piece on its own gives the reference's logits (so each can be removed)."""
    ref = make()
    src, tgt = ids(3, 6), ids(3, 5)
    src[1, 3:] = PAD
    with torch.no_grad():
        expected = ref(src, tgt)
        for piece in PIECES:
            model = copy.deepcopy(ref)
            piece(model)
            assert max_diff(model(src, tgt), expected) <= TOL, piece.__name__


def test_shared_source_attention_wraps_once():
    model = optimize(optimize(make()))
    for layer in model.decoder_layers:
        assert isinstance(layer.cross_attn.attention, SharedSourceAttention)
        assert not isinstance(layer.cross_attn.attention.inner, SharedSourceAttention)
    assert model.beams_share_source and isinstance(model.new_cache(), FastKVCache)
    assert type(make().new_cache()) is KVCache


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "c.toml", "--out", "run"],
        ["translate", "run"],
        ["evaluate", "run"],
        ["bench", "model"],
        ["bench", "decode"],
    ],
)
def test_cli_commands_take_one_reference_flag(argv):
    """`--reference` (the plain reference core) on train, translate, evaluate and bench."""
    parser = build_parser()
    assert parser.parse_args([*argv, "--reference"]).reference is True
    assert parser.parse_args(argv).reference is False


def test_fast_dropout_replaces_the_models_dropout_modules():
    """Every nn.Dropout becomes the 16-bit-mask Dropout (same p); eval mode is unchanged and
    training mode drops (two calls differ)."""
    ref = make(dropout=0.3)
    n_dropout = sum(type(m) is torch.nn.Dropout for m in ref.modules())
    model = copy.deepcopy(ref)
    assert use_fast_dropout(model) == n_dropout > 0
    assert all(
        isinstance(m, Dropout) and m.p == 0.3
        for m in model.modules()
        if "Dropout" in type(m).__name__
    )
    src, tgt = ids(2, 5), ids(2, 4)
    with torch.no_grad():
        assert max_diff(model(src, tgt), ref(src, tgt)) <= TOL
        model.train()
        assert max_diff(model(src, tgt), model(src, tgt)) > 1e-3
