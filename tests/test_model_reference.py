"""Our encoder-decoder equals PyTorch's `nn.Transformer` with the same weights (float64).

The token embeddings, positions and the final linear layer live outside `nn.Transformer`,
so the reference is  F.linear(nn.Transformer(embed(src), embed(tgt), masks), W_out)  with
our embedding outputs fed in. `nn.Transformer` always ends each stack with a LayerNorm; the
paper's post-norm model has none there, so for post-norm the test replaces those two norms by
the identity (for pre-norm they are our final per-stack norms and get our weights).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transformer.config import ModelConfig
from transformer.models import Transformer

PAD = 0
# nn.Transformer warns about its nested-tensor fast path; irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore:.*nested:UserWarning")


def small_config(**overrides) -> ModelConfig:
    values = dict(
        src_vocab_size=53,
        tgt_vocab_size=53,
        d_model=32,
        n_heads=4,
        d_ff=48,
        n_encoder_layers=2,
        n_decoder_layers=3,
        max_len=64,
        pad_id=PAD,
    )
    return ModelConfig.from_dict({**values, **overrides})


def copy_mha(ref: nn.MultiheadAttention, in_weight, in_bias, out_proj: nn.Linear) -> None:
    ref.in_proj_weight.copy_(in_weight)
    ref.in_proj_bias.copy_(in_bias)
    ref.out_proj.weight.copy_(out_proj.weight)
    ref.out_proj.bias.copy_(out_proj.bias)


def copy_linear_or_norm(ref: nn.Module, ours: nn.Module) -> None:
    ref.weight.copy_(ours.weight)
    ref.bias.copy_(ours.bias)


@torch.no_grad()
def reference_from(model: Transformer) -> nn.Transformer:
    """An nn.Transformer of the same size holding our weights (eval mode, float64)."""
    cfg = model.config
    ref = nn.Transformer(
        d_model=cfg.d_model,
        nhead=cfg.n_heads,
        num_encoder_layers=cfg.n_encoder_layers,
        num_decoder_layers=cfg.n_decoder_layers,
        dim_feedforward=cfg.d_ff,
        dropout=cfg.dropout,
        activation=cfg.activation,
        layer_norm_eps=cfg.layer_norm_eps,
        batch_first=True,
        norm_first=cfg.norm_first,
        dtype=torch.float64,
    )
    for r, o in zip(ref.encoder.layers, model.encoder_layers):
        sa = o.self_attn
        copy_mha(r.self_attn, sa.qkv_proj.weight, sa.qkv_proj.bias, sa.out_proj)
        copy_linear_or_norm(r.linear1, o.ffn.linear1)
        copy_linear_or_norm(r.linear2, o.ffn.linear2)
        copy_linear_or_norm(r.norm1, o.self_norm)
        copy_linear_or_norm(r.norm2, o.ffn_norm)
    for r, o in zip(ref.decoder.layers, model.decoder_layers):
        sa, ca = o.self_attn, o.cross_attn
        copy_mha(r.self_attn, sa.qkv_proj.weight, sa.qkv_proj.bias, sa.out_proj)
        copy_mha(
            r.multihead_attn,
            torch.cat([ca.q_proj.weight, ca.kv_proj.weight]),
            torch.cat([ca.q_proj.bias, ca.kv_proj.bias]),
            ca.out_proj,
        )
        copy_linear_or_norm(r.linear1, o.ffn.linear1)
        copy_linear_or_norm(r.linear2, o.ffn.linear2)
        copy_linear_or_norm(r.norm1, o.self_norm)
        copy_linear_or_norm(r.norm2, o.cross_norm)
        copy_linear_or_norm(r.norm3, o.ffn_norm)
    if cfg.norm_first:
        copy_linear_or_norm(ref.encoder.norm, model.encoder_norm)
        copy_linear_or_norm(ref.decoder.norm, model.decoder_norm)
    else:  # the paper's post-norm stacks end without an extra LayerNorm
        ref.encoder.norm = nn.Identity()
        ref.decoder.norm = nn.Identity()
    return ref.eval()


def random_padded_batch(batch: int, max_len: int, vocab: int, min_len: int = 1):
    """(B, max_len) ids in 1..vocab-1, right-padded with PAD to random lengths >= min_len."""
    ids = torch.randint(1, vocab, (batch, max_len))
    lengths = torch.randint(min_len, max_len + 1, (batch,))
    lengths[0] = max_len
    ids[torch.arange(max_len)[None, :] >= lengths[:, None]] = PAD
    return ids, lengths


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_equals_nn_transformer_float64(norm_first, activation):
    cfg = small_config(norm_first=norm_first, activation=activation)
    model = Transformer(cfg).double().eval()
    with torch.no_grad():  # random LayerNorm affine parameters, so they are really compared
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    ref = reference_from(model)
    src, _ = random_padded_batch(4, 9, cfg.src_vocab_size)
    tgt, _ = random_padded_batch(4, 7, cfg.tgt_vocab_size)
    src_pad = src.eq(PAD)
    assert src_pad.any(), "the batch must contain padding to test the padding masks"
    causal = torch.ones(7, 7, dtype=torch.bool).triu(1)  # True = masked (future)
    with torch.no_grad():
        ours = model(src, tgt)
        x_src = model.src_embed(src) + model.src_pos(src.shape[1])
        x_tgt = model.tgt_embed(tgt) + model.tgt_pos(tgt.shape[1])
        hidden = ref(
            x_src,
            x_tgt,
            tgt_mask=causal,
            src_key_padding_mask=src_pad,
            memory_key_padding_mask=src_pad,
            tgt_is_causal=True,
        )
        expected = F.linear(hidden, model.output_weight)
    assert ours.dtype == torch.float64 and ours.shape == (4, 7, cfg.tgt_vocab_size)
    diff = (ours - expected).abs().max().item()
    print(f"max abs diff {diff:.3g}")
    assert diff <= 1e-10


def test_reference_detects_a_changed_weight():
    """The comparison above is sensitive: one perturbed weight breaks the equality."""
    cfg = small_config()
    model = Transformer(cfg).double().eval()
    ref = reference_from(model)
    with torch.no_grad():
        ref.decoder.layers[1].multihead_attn.in_proj_weight[40, 3] += 1e-3
        src, _ = random_padded_batch(2, 5, cfg.src_vocab_size)
        tgt = torch.randint(1, cfg.tgt_vocab_size, (2, 4))
        pad = src.eq(PAD)
        hidden = ref(
            model.src_embed(src) + model.src_pos(5),
            model.tgt_embed(tgt) + model.tgt_pos(4),
            tgt_mask=torch.ones(4, 4, dtype=torch.bool).triu(1),
            src_key_padding_mask=pad,
            memory_key_padding_mask=pad,
        )
        diff = (model(src, tgt) - F.linear(hidden, model.output_weight)).abs().max().item()
    assert diff > 1e-8


@pytest.mark.parametrize("norm_first", [False, True])
def test_gpt_equals_causal_nn_transformer_encoder_float64(norm_first):
    """A GPT block is an encoder layer under a causal mask: GPT == nn.TransformerEncoder with
    our weights, our embeddings/positions in front and our tied output layer behind."""
    from transformer.models import GPT

    cfg = small_config(norm_first=norm_first, positional="learned", activation="gelu")
    model = GPT(cfg).double().eval()
    layer = nn.TransformerEncoderLayer(
        cfg.d_model,
        cfg.n_heads,
        cfg.d_ff,
        dropout=0.0,
        activation="gelu",
        layer_norm_eps=cfg.layer_norm_eps,
        batch_first=True,
        norm_first=norm_first,
        dtype=torch.float64,
    )
    final = nn.LayerNorm(cfg.d_model, dtype=torch.float64) if norm_first else None
    ref = nn.TransformerEncoder(
        layer, cfg.n_decoder_layers, norm=final, enable_nested_tensor=False
    ).eval()
    with torch.no_grad():
        for r, o in zip(ref.layers, model.layers):
            sa = o.self_attn
            copy_mha(r.self_attn, sa.qkv_proj.weight, sa.qkv_proj.bias, sa.out_proj)
            copy_linear_or_norm(r.linear1, o.ffn.linear1)
            copy_linear_or_norm(r.linear2, o.ffn.linear2)
            copy_linear_or_norm(r.norm1, o.self_norm)
            copy_linear_or_norm(r.norm2, o.ffn_norm)
        if norm_first:
            copy_linear_or_norm(ref.norm, model.norm)
        idx = torch.randint(0, cfg.tgt_vocab_size, (3, 10))
        x = model.embed(idx) + model.pos(10)
        hidden = ref(x, mask=torch.ones(10, 10, dtype=torch.bool).triu(1), is_causal=True)
        diff = (model(idx) - F.linear(hidden, model.output_weight)).abs().max().item()
    assert diff <= 1e-10
