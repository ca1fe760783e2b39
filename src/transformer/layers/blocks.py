"""Feed-forward network, residual + LayerNorm, encoder and decoder layers
(Vaswani et al., 2017, Sections 3.1 and 3.3).

Post-norm (the paper, default): x = LayerNorm(x + Dropout(Sublayer(x))).
Pre-norm (`norm_first=True`):   x = x + Dropout(Sublayer(LayerNorm(x))), and the stack ends
with one more LayerNorm (applied by the model), as in `nn.Transformer(norm_first=True)`.

Shape legend: B batch, S source length, T target length, D d_model, F d_ff.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transformer.config import ModelConfig
from transformer.layers.mha import (
    CrossAttention,
    LayerCache,
    SelfAttention,
    init_attention_,
    init_linear_,
)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), GPT-2's GELU."""
    return F.gelu(x, approximate="tanh")


_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": _gelu_tanh}


class FeedForward(nn.Module):
    """FFN(x) = act(x W_1 + b_1) W_2 + b_2 (Eq. 2), act = ReLU (paper), GELU ("gelu", exact)
    or GELU's tanh approximation ("gelu_tanh", GPT-2's).

    (B, T, D) -> (B, T, F) -> (B, T, D).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu") -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)  # W_1: D -> F
        self.linear2 = nn.Linear(d_ff, d_model)  # W_2: F -> D
        self.act = _ACTIVATIONS[activation]
        init_linear_(self.linear1)
        init_linear_(self.linear2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.act(self.linear1(x)))


class LectureLayerNorm(nn.Module):
    """The lecture slide's LayerNorm code, kept as a reference (Ba et al., 2016):
    a_2 · (x - mean) / (std + eps) + b_2 with eps added to the *unbiased* std.

    It differs from `nn.LayerNorm` (used by the model), which divides by
    sqrt(biased variance + eps), i.e. the formula on the same slide with σ = sqrt(mean((a-μ)²)).
    The two agree up to the factor sqrt(H/(H-1)) and the placement of eps.
    """

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class _Sublayers(nn.Module):
    """The residual connection around each sub-layer (Sections 3.1, 5.4):
    post-norm x = LayerNorm(x + Dropout(Sublayer(x))),
    pre-norm  x = x + Dropout(Sublayer(LayerNorm(x)))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.dropout = nn.Dropout(cfg.dropout)

    def sublayer_input(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        """What the sub-layer reads: LayerNorm(x) in pre-norm, x in post-norm."""
        return norm(x) if self.norm_first else x

    def add(self, x: torch.Tensor, y: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        """The residual sum of x and the sub-layer's output y, normalised in post-norm."""
        x = x + self.dropout(y)
        return x if self.norm_first else norm(x)


def _attention_args(cfg: ModelConfig) -> tuple[int, int, int, int, float]:
    return cfg.d_model, cfg.n_heads, cfg.head_dim_k, cfg.head_dim_v, cfg.attention_dropout


class EncoderLayer(_Sublayers):
    """Self-attention + FFN (Section 3.1): x (B, S, D), mask (B, 1, 1, S) -> (B, S, D)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.self_attn = SelfAttention(*_attention_args(cfg))
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.activation)
        self.self_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.ffn_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        init_attention_(self.self_attn)

    def forward(self, x, mask=None, need_weights=False):
        """Returns (x (B, S, D), self-attention weights (B, H, S, S) or None)."""
        h = self.sublayer_input(x, self.self_norm)
        y, weights = self.self_attn(h, mask, need_weights=need_weights)
        x = self.add(x, y, self.self_norm)
        x = self.add(x, self.ffn(self.sublayer_input(x, self.ffn_norm)), self.ffn_norm)
        return x, weights


class DecoderLayer(_Sublayers):
    """Masked self-attention, cross-attention over the encoder output, FFN (Section 3.1).

    With `cross=False` (the GPT block) there is no cross-attention sub-layer.
    x (B, T, D), memory (B, S, D), memory_mask (B, 1, 1, S) -> (B, T, D).
    """

    def __init__(self, cfg: ModelConfig, cross: bool = True) -> None:
        super().__init__(cfg)
        eps = cfg.layer_norm_eps
        self.self_attn = SelfAttention(*_attention_args(cfg))
        self.self_norm = nn.LayerNorm(cfg.d_model, eps=eps)
        init_attention_(self.self_attn)
        self.cross_attn = CrossAttention(*_attention_args(cfg)) if cross else None
        self.cross_norm = nn.LayerNorm(cfg.d_model, eps=eps) if cross else None
        if self.cross_attn is not None:
            init_attention_(self.cross_attn)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.activation)
        self.ffn_norm = nn.LayerNorm(cfg.d_model, eps=eps)

    def forward(
        self, x, memory=None, memory_mask=None, cache: LayerCache | None = None, need_weights=False
    ):
        """Returns (x (B, T, D), self weights (B, H, T, L) | None, cross (B, H, T, S) | None).

        The self-attention is causal: position t sees positions <= t (with a cache, the
        cached positions come first).
        """
        h = self.sublayer_input(x, self.self_norm)
        y, self_w = self.self_attn(h, causal=True, cache=cache, need_weights=need_weights)
        x = self.add(x, y, self.self_norm)
        cross_w = None
        if self.cross_attn is not None:
            h = self.sublayer_input(x, self.cross_norm)
            y, cross_w = self.cross_attn(h, memory, memory_mask, cache, need_weights)
            x = self.add(x, y, self.cross_norm)
        x = self.add(x, self.ffn(self.sublayer_input(x, self.ffn_norm)), self.ffn_norm)
        return x, self_w, cross_w
