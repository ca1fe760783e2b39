"""Building blocks against independent references: the lecture's positional-encoding formula
(scalar loop), an embedding lookup loop, a per-head attention loop, nn.MultiheadAttention,
the FFN formula, and the lecture's LayerNorm vs nn.LayerNorm."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transformer.layers import (
    CrossAttention,
    FeedForward,
    LectureLayerNorm,
    PositionalEncoding,
    SelfAttention,
    TokenEmbedding,
    sinusoidal_encoding,
)


@pytest.mark.parametrize("d", [128, 7])
def test_sinusoid_equals_lecture_formula(d):
    """p_t[2k] = sin(ω_k t), p_t[2k+1] = cos(ω_k t), ω_k = 1/10000^(2k/d) (scalar loop)."""
    pe = sinusoidal_encoding(50, d, dtype=torch.float64)
    for t in range(50):
        for i in range(d):
            k = i // 2
            omega = 1.0 / 10000 ** (2 * k / d)
            expected = math.sin(omega * t) if i % 2 == 0 else math.cos(omega * t)
            assert abs(pe[t, i].item() - expected) <= 1e-12
    assert pe.abs().max() <= 1.0  # bounded
    torch.testing.assert_close(pe, sinusoidal_encoding(50, d, dtype=torch.float64))


def test_positional_module_offsets_and_limits():
    pos = PositionalEncoding("sinusoidal", 20, 8)
    torch.testing.assert_close(pos(5, offset=3), sinusoidal_encoding(20, 8)[3:8])
    with pytest.raises(ValueError, match="max_len=20"):
        pos(6, offset=15)
    learned = PositionalEncoding("learned", 20, 8)
    assert learned.table.requires_grad and learned(4).shape == (4, 8)
    assert "table" not in pos.state_dict()  # the sinusoid is a closed form, not a weight


def test_token_embedding_is_scaled_lookup_and_pad_gets_no_gradient():
    emb = TokenEmbedding(11, 16, padding_idx=0)
    ids = torch.tensor([[3, 0, 10], [0, 1, 3]])
    out = emb(ids)
    for b in range(2):
        for t in range(3):
            torch.testing.assert_close(out[b, t], emb.weight[ids[b, t]] * 4.0)
    assert torch.all(emb.weight[0] == 0)
    out.sum().backward()
    assert torch.all(emb.weight.grad[0] == 0) and emb.weight.grad[3].abs().sum() > 0


def loop_attention(x_q, x_kv, w_q, b_q, w_k, b_k, w_v, b_v, out, n_heads, masked):
    """Per-(batch, head, query) loop of Eq. (1) with explicit per-head projections.
    masked(b, t, s) -> bool says whether key s is hidden from query t."""
    B, T, _ = x_q.shape
    S = x_kv.shape[1]
    dk, dv = w_q.shape[0] // n_heads, w_v.shape[0] // n_heads
    heads = torch.zeros(B, T, n_heads * dv, dtype=x_q.dtype)
    for b in range(B):
        for h in range(n_heads):
            qs, ks, vs = (
                slice(h * dk, (h + 1) * dk),
                slice(h * dk, (h + 1) * dk),
                slice(h * dv, (h + 1) * dv),
            )
            q = x_q[b] @ w_q[qs].T + b_q[qs]
            k = x_kv[b] @ w_k[ks].T + b_k[ks]
            v = x_kv[b] @ w_v[vs].T + b_v[vs]
            for t in range(T):
                scores = [(q[t] @ k[s]).item() / math.sqrt(dk) for s in range(S)]
                keep = [s for s in range(S) if not masked(b, t, s)]
                top = max(scores[s] for s in keep)
                z = sum(math.exp(scores[s] - top) for s in keep)
                for s in keep:
                    heads[b, t, vs] += math.exp(scores[s] - top) / z * v[s]
    return heads @ out.weight.T + out.bias


def test_self_attention_with_unequal_head_dims_equals_loop():
    """d_k != d_v != d_model / h (Table 3 row B style), causal + padding mask."""
    torch.manual_seed(1)
    attn = SelfAttention(d_model=12, n_heads=3, d_k=5, d_v=6, dropout=0.0).double()
    x = torch.randn(2, 4, 12, dtype=torch.float64)
    pad = torch.tensor([[False] * 4, [False, False, True, True]])
    out, _ = attn(x, mask=pad[:, None, None, :], causal=True)
    w_q, w_k, w_v = attn.qkv_proj.weight.split([15, 15, 18])
    b_q, b_k, b_v = attn.qkv_proj.bias.split([15, 15, 18])
    expected = loop_attention(
        x,
        x,
        w_q,
        b_q,
        w_k,
        b_k,
        w_v,
        b_v,
        attn.out_proj,
        3,
        lambda b, t, s: s > t or bool(pad[b, s]),
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_cross_attention_equals_nn_multihead_attention():
    attn = CrossAttention(d_model=16, n_heads=4, d_k=4, d_v=4, dropout=0.0).double()
    ref = nn.MultiheadAttention(16, 4, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.kv_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.kv_proj.bias]))
        ref.out_proj.load_state_dict(attn.out_proj.state_dict())
    x, memory = torch.randn(3, 5, 16).double(), torch.randn(3, 7, 16).double()
    pad = torch.rand(3, 7) < 0.3
    pad[:, 0] = False
    out, weights = attn(x, memory, mask=pad[:, None, None, :], need_weights=True)
    expected, expected_w = ref(x, memory, memory, key_padding_mask=pad, average_attn_weights=False)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(weights, expected_w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_formula(activation):
    ffn = FeedForward(8, 20, activation).double()
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    hidden = x @ ffn.linear1.weight.T + ffn.linear1.bias
    if activation == "relu":
        hidden = hidden.clamp(min=0)
    else:  # GELU(x) = x Φ(x), Φ the standard normal CDF
        hidden = hidden * 0.5 * (1 + torch.erf(hidden / math.sqrt(2)))
    torch.testing.assert_close(ffn(x), hidden @ ffn.linear2.weight.T + ffn.linear2.bias)


def test_lecture_layer_norm_vs_nn_layer_norm():
    """The slide's code divides by (unbiased std + eps); nn.LayerNorm by sqrt(biased var + eps),
    which is the slide's *formula* (σ over H, no eps). With eps = 0 they differ exactly by the
    factor sqrt((H-1)/H); with the default eps they are close but not equal."""
    H = 10
    x = torch.randn(4, 6, H, dtype=torch.float64) * 3 + 1
    lecture = LectureLayerNorm(H, eps=0.0).double()
    torch_ln = nn.LayerNorm(H, eps=0.0, dtype=torch.float64)
    with torch.no_grad():
        for p in (lecture.a_2, lecture.b_2, torch_ln.weight, torch_ln.bias):
            p.copy_(torch.linspace(0.5, 1.5, H))
    mu = x.mean(-1, keepdim=True)
    sigma = ((x - mu) ** 2).mean(-1, keepdim=True).sqrt()  # the slide's formula, biased σ
    formula = lecture.a_2 * (x - mu) / sigma + lecture.b_2
    torch.testing.assert_close(torch_ln(x), formula, rtol=0, atol=1e-12)
    scale = math.sqrt((H - 1) / H)
    torch.testing.assert_close(
        lecture(x) - lecture.b_2, (formula - lecture.b_2) * scale, rtol=0, atol=1e-12
    )
    default_diff = (LectureLayerNorm(H)(x.float()) - F.layer_norm(x.float(), (H,))).abs().max()
    assert default_diff > 1e-3  # the quirk is real: the slide's code is not nn.LayerNorm
