"""Multi-head attention (Vaswani et al., 2017, Section 3.2.2) and its decoding cache.

MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

`SelfAttention` projects Q, K and V with one fused (D -> H·(2Dk+Dv)) linear layer;
`CrossAttention` projects Q from the decoder and K, V (fused) from the encoder output. The
weight layouts equal `nn.MultiheadAttention`'s `in_proj_weight` rows [Q; K; V] with head h at
rows h·Dk .. (h+1)·Dk of each block, so weights copy across one to one. Attention itself
(Eq. 1) is the parameter-free `ScaledDotProductAttention` module of each layer.

Shape legend: B batch, T query length, S key length, L cached positions, D d_model, H heads,
Dk/Dv head dims.
"""

from __future__ import annotations

import torch
from torch import nn

from transformer.attention import attention, future_mask


class ScaledDotProductAttention(nn.Module):
    """Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V (Eq. 1) over heads, with dropout `p` on
    the weights in training mode. No parameters.

    q (B, H, T, Dk), k (B, H, S, Dk), v (B, H, S, Dv); mask bool broadcastable to
    (B, H, T, S), True = hidden; causal: also hide the keys after each query (the T queries
    are the last T of the S positions). Returns (out (B, H, T, Dv), weights (B, H, T, S) when
    `need_weights`, else None).
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, q, k, v, mask=None, causal=False, need_weights=False):
        if causal:
            future = future_mask(q.shape[-2], k.shape[-2], q.device)  # (T, S)
            mask = future if mask is None else mask | future
        out, weights = attention(q, k, v, mask, self.p if self.training else 0.0)
        return out, weights if need_weights else None

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerCache:
    """One decoder layer's incremental-decoding state.

    k, v: the self-attention keys/values of every position decoded so far, (B, H, L, Dk|Dv);
    cross_k, cross_v: the encoder output's projected keys/values, (B, H, S, Dk|Dv), computed
    on the first cached call and reused.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.cross_k: torch.Tensor | None = None
        self.cross_v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys/values (B, H, T, Dk|Dv) along the position axis; return all."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)  # (B, H, L + T, Dk)
            self.v = torch.cat([self.v, v], dim=2)  # (B, H, L + T, Dv)
        return self.k, self.v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep/reorder batch rows: index (B',) int64 selects the rows of every tensor."""
        for name in ("k", "v", "cross_k", "cross_v"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, index))


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, H·Dh) -> (B, H, T, Dh)."""
    b, t, _ = x.shape
    return x.view(b, t, n_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, Dh) -> (B, T, H·Dh): Concat(head_1, ..., head_h)."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class SelfAttention(nn.Module):
    """Multi-head self-attention: x (B, T, D) -> (B, T, D), and the weights on request.

    mask: bool broadcastable to (B, H, T, S), True = masked (e.g. padding (B, 1, 1, S));
    causal: hide later positions (the decoder's masked self-attention, Section 3.2.3).
    With a `LayerCache`, x holds only the new positions; their keys/values are appended and
    the queries attend over every cached position.
    """

    def __init__(self, d_model: int, n_heads: int, d_k: int, d_v: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.d_k, self.d_v = n_heads, d_k, d_v
        # W^O first: the creation order of earlier versions, so a seed gives the same weights.
        self.out_proj = nn.Linear(n_heads * d_v, d_model)  # W^O: (H·Dv) -> D
        self.qkv_proj = nn.Linear(d_model, n_heads * (2 * d_k + d_v))  # [W^Q; W^K; W^V]
        self.attention = ScaledDotProductAttention(dropout)

    def forward(
        self, x, mask=None, causal=False, cache: LayerCache | None = None, need_weights=False
    ):
        hk, hv = self.n_heads * self.d_k, self.n_heads * self.d_v
        q, k, v = self.qkv_proj(x).split([hk, hk, hv], dim=-1)  # (B, T, H·Dk|H·Dv)
        q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))  # (B, H, T, Dk|Dv)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, L, Dk|Dv), L = cached + T
        out, weights = self.attention(q, k, v, mask, causal, need_weights)  # (B, H, T, Dv)
        return self.out_proj(merge_heads(out)), weights  # (B, T, H·Dv) -> (B, T, D)


class CrossAttention(nn.Module):
    """Encoder-decoder attention: queries from x (B, T, D), keys/values from memory (B, S, D).

    mask: (B, 1, 1, S) bool, True = padded source position. With a `LayerCache`, the projected
    keys/values of `memory` are computed on the first call and reused on later ones.
    """

    def __init__(self, d_model: int, n_heads: int, d_k: int, d_v: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.d_k, self.d_v = n_heads, d_k, d_v
        self.out_proj = nn.Linear(n_heads * d_v, d_model)  # W^O (created first, as above)
        self.q_proj = nn.Linear(d_model, n_heads * d_k)  # W^Q
        self.kv_proj = nn.Linear(d_model, n_heads * (d_k + d_v))  # [W^K; W^V]
        self.attention = ScaledDotProductAttention(dropout)

    def forward(self, x, memory, mask=None, cache: LayerCache | None = None, need_weights=False):
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, H, T, Dk)
        k, v = self.keys_values(memory, mask, cache)  # (B, H, S, Dk|Dv)
        out, weights = self.attention(q, k, v, mask, need_weights=need_weights)  # (B, H, T, Dv)
        return self.out_proj(merge_heads(out)), weights  # (B, T, D)

    def keys_values(self, memory, mask, cache: LayerCache | None):
        """memory (B, S, D) -> its keys (B, H, S, Dk) and values (B, H, S, Dv), from the cache
        when it holds them. (`mask` is unused here; the fast engine's variant reads it.)"""
        if cache is not None and cache.cross_k is not None:
            return cache.cross_k, cache.cross_v
        hk, hv = self.n_heads * self.d_k, self.n_heads * self.d_v
        k, v = self.kv_proj(memory).split([hk, hv], dim=-1)  # (B, S, H·Dk), (B, S, H·Dv)
        k, v = split_heads(k, self.n_heads), split_heads(v, self.n_heads)  # (B, H, S, .)
        if cache is not None:
            cache.cross_k, cache.cross_v = k, v
        return k, v


def init_linear_(layer: nn.Linear, fan_out_blocks: list[int] | None = None) -> None:
    """Xavier-uniform weight (Glorot & Bengio, 2010), zero bias. A fused projection is
    initialised block by block (`fan_out_blocks` rows each), as separate matrices would be."""
    with torch.no_grad():
        for block in layer.weight.split(fan_out_blocks or [layer.out_features], dim=0):
            nn.init.xavier_uniform_(block)
        if layer.bias is not None:
            layer.bias.zero_()


def init_attention_(module: SelfAttention | CrossAttention) -> None:
    """Initialise one attention module: W^Q, W^K, W^V (per head block set) and W^O."""
    hk, hv = module.n_heads * module.d_k, module.n_heads * module.d_v
    if isinstance(module, SelfAttention):
        init_linear_(module.qkv_proj, [hk, hk, hv])
    else:
        init_linear_(module.q_proj)
        init_linear_(module.kv_proj, [hk, hv])
    init_linear_(module.out_proj)
