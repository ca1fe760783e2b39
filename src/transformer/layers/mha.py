"""Multi-head attention modules (Vaswani et al., 2017, Section 3.2.2) on top of
`transformer.attention.attend`.

MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

`SelfAttention` projects Q, K and V with one fused (D -> H·(2Dk+Dv)) linear layer;
`CrossAttention` projects Q from the decoder and K, V (fused) from the encoder output. The
weight layouts equal `nn.MultiheadAttention`'s `in_proj_weight` rows [Q; K; V] with head h at
rows h·Dk .. (h+1)·Dk of each block, so weights copy across one to one.

Shape legend: B batch, T query length, S key length, D d_model, H heads, Dk/Dv head dims.
"""

from __future__ import annotations

import torch
from torch import nn

from transformer.attention import attend
from transformer.layers.padding import NonPad


class LayerCache:
    """One decoder layer's incremental-decoding state.

    k, v: self-attention keys/values of every position decoded so far, (B·G, H, L, Dk|Dv);
    cross_k, cross_v: the encoder output's projected keys/values, (B, H, S, Dk|Dv),
    computed on the first cached call and reused (one row per memory row: G target rows
    share it, see `CrossAttention`).

    `reorder` of k, v is applied lazily: the next `append` selects the rows and appends the new
    positions in one copy (beam search reorders and appends every step: one pass over the
    cache instead of two). Reading `k` or `v` applies a pending reorder.
    """

    def __init__(self) -> None:
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._rows: torch.Tensor | None = None  # a reorder not yet applied to _k, _v
        self.cross_k: torch.Tensor | None = None
        self.cross_v: torch.Tensor | None = None

    @property
    def k(self) -> torch.Tensor | None:
        self._apply_rows()
        return self._k

    @property
    def v(self) -> torch.Tensor | None:
        self._apply_rows()
        return self._v

    def _apply_rows(self) -> None:
        if self._rows is not None and self._k is not None:
            self._k, self._v = (x.index_select(0, self._rows) for x in (self._k, self._v))
        self._rows = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys/values (B, H, T_new, Dk|Dv) along the position axis; return all."""
        if self._k is None:
            self._k, self._v = k, v
        else:
            self._k = _select_and_append(self._k, self._rows, k)  # (B, H, L + T_new, Dk)
            self._v = _select_and_append(self._v, self._rows, v)
        self._rows = None
        return self._k, self._v

    def reorder(self, index: torch.Tensor, cross: bool | torch.Tensor = True) -> None:
        """Keep/reorder batch rows: index (B',) int64 into k, v. cross_k/v follow `index` when
        `cross` is True, stay as they are when False, and keep the rows of `cross` when it is
        an int64 index (memory rows, when memory is shared by groups of target rows)."""
        self._rows = index if self._rows is None else self._rows.index_select(0, index)
        select = index if cross is True else cross if isinstance(cross, torch.Tensor) else None
        if select is not None and self.cross_k is not None:
            self.cross_k = self.cross_k.index_select(0, select)
            self.cross_v = self.cross_v.index_select(0, select)


def _select_and_append(old: torch.Tensor, rows: torch.Tensor | None, new: torch.Tensor):
    """cat([old.index_select(0, rows), new], dim=2), the selection written straight into the
    result (plain cat when rows is None, and under autograd, which `out=` does not support).
    old (B, H, L, Dh), rows (B',), new (B', H, T, Dh) -> (B', H, L + T, Dh)."""
    if rows is None:
        return torch.cat([old, new], dim=2)
    if torch.is_grad_enabled() and (old.requires_grad or new.requires_grad):
        return torch.cat([old.index_select(0, rows), new], dim=2)
    length = old.size(2)
    out = old.new_empty(rows.numel(), old.size(1), length + new.size(2), old.size(3))
    torch.index_select(old, 0, rows, out=out[:, :, :length])
    out[:, :, length:] = new
    return out


def _split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, H·Dh) -> (B, H, T, Dh), a strided view (no copy)."""
    b, t, _ = x.shape
    return x.view(b, t, n_heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, Dh) -> (B, T, H·Dh)."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class _MultiHead(nn.Module):
    """Shared parts: head sizes, the output projection W^O, and the attention call."""

    def __init__(self, d_model: int, n_heads: int, d_k: int, d_v: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.d_k, self.d_v, self.dropout = n_heads, d_k, d_v, dropout
        self.out_proj = nn.Linear(n_heads * d_v, d_model)  # W^O: (H·Dv) -> D

    def _attend(self, q, k, v, mask, causal, need_weights, tokens: NonPad | None = None):
        p = self.dropout if self.training else 0.0
        out, weights = attend(
            q, k, v, mask=mask, causal=causal, dropout_p=p, need_weights=need_weights
        )  # (B, H, T, Dv), (B, H, T, S)|None
        out = _merge_heads(out)  # (B, T, H·Dv)
        if tokens is not None:
            out = tokens.pack(out)  # (n, H·Dv): the real tokens only
        return self.out_proj(out), weights  # (B, T, D) | (n, D)


class SelfAttention(_MultiHead):
    """Self-attention with one fused QKV projection: x (B, T, D) -> (B, T, D).

    mask: bool broadcastable to (B, H, T, S), True = masked (e.g. padding (B, 1, 1, S));
    causal: hide later positions (the decoder's masked self-attention, Section 3.2.3).
    With a `LayerCache`, x holds only the new positions; their keys/values are appended
    and the queries attend over every cached position. With a `NonPad` (`tokens`), x is the
    (n, D) rows of a padded batch's real tokens (see `transformer.layers.padding`), and so is
    the result.
    """

    def __init__(self, d_model: int, n_heads: int, d_k: int, d_v: int, dropout: float) -> None:
        super().__init__(d_model, n_heads, d_k, d_v, dropout)
        self.qkv_proj = nn.Linear(d_model, n_heads * (2 * d_k + d_v))  # [W^Q; W^K; W^V]

    def forward(
        self,
        x,
        mask=None,
        causal=False,
        cache: LayerCache | None = None,
        need_weights=False,
        tokens: NonPad | None = None,
    ):
        hk = self.n_heads * self.d_k
        qkv = self.qkv_proj(x)  # (B, T, H·(2Dk+Dv)) | (n, ...)
        if tokens is not None:
            qkv = tokens.unpack(qkv)  # (B, T, ...), zero at padding
        q, k, v = qkv.split([hk, hk, self.n_heads * self.d_v], dim=-1)
        q, k, v = (_split_heads(t, self.n_heads) for t in (q, k, v))  # (B, H, T, Dk|Dv)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, L + T, Dk|Dv)
        return self._attend(q, k, v, mask, causal, need_weights, tokens)


class CrossAttention(_MultiHead):
    """Encoder-decoder attention: queries from x (B·G, T, D), keys/values from memory (B, S, D).

    mask: (B, 1, 1, S) bool, True = padded source position. Each memory row serves G >= 1
    consecutive rows of x (beam search: the K beams of a sentence read its source once, not K
    times): their G·T queries attend to it together, which is the same attention as G copies
    of the memory, with the keys/values projected, stored and read once. With a `LayerCache`,
    the projected keys/values of `memory` are computed once and reused on later calls.
    """

    def __init__(self, d_model: int, n_heads: int, d_k: int, d_v: int, dropout: float) -> None:
        super().__init__(d_model, n_heads, d_k, d_v, dropout)
        self.q_proj = nn.Linear(d_model, n_heads * d_k)  # W^Q
        self.kv_proj = nn.Linear(d_model, n_heads * (d_k + d_v))  # [W^K; W^V]

    def forward(self, x, memory, mask=None, cache: LayerCache | None = None, need_weights=False):
        if x.size(0) % max(memory.size(0), 1):
            raise ValueError(
                f"x's batch ({x.size(0)} rows) must be a multiple of memory's "
                f"({memory.size(0)} rows): each memory row serves that many rows of x"
            )
        group = x.size(0) // memory.size(0) if memory.size(0) else 1  # G
        q = _group_rows(_split_heads(self.q_proj(x), self.n_heads), group)  # (B, H, G·T, Dk)
        k, v = self._keys_values(memory, mask, cache)  # (B, H, S, Dk|Dv)
        p = self.dropout if self.training else 0.0
        out, weights = attend(q, k, v, mask=mask, dropout_p=p, need_weights=need_weights)
        out = _ungroup_rows(out, group)  # (B·G, H, T, Dv)
        weights = None if weights is None else _ungroup_rows(weights, group)  # (B·G, H, T, S)
        return self.out_proj(_merge_heads(out)), weights  # (B·G, T, D)

    def _keys_values(self, memory, mask, cache: LayerCache | None):
        """The projected keys and values of memory (B, S, D): (B, H, S, Dk), (B, H, S, Dv)."""
        if cache is not None and cache.cross_k is not None:
            k, v = cache.cross_k, cache.cross_v
        else:
            k, v = self._project_memory(memory, mask).split(
                [self.n_heads * self.d_k, self.n_heads * self.d_v], dim=-1
            )
            k, v = _split_heads(k, self.n_heads), _split_heads(v, self.n_heads)  # (B, H, S, .)
            if cache is not None:  # contiguous once, not re-copied by every step's matmul
                cache.cross_k, cache.cross_v = k.contiguous(), v.contiguous()
        return k, v

    def _project_memory(self, memory, mask):
        """kv_proj(memory): (B, S, D) -> (B, S, H·(Dk+Dv)). Without autograd and with a
        (B, 1, 1, S) padding mask, only the real positions are projected (`NonPad`); the
        padded ones are zero, which the mask hides from every query."""
        b, s, _ = memory.shape
        if torch.is_grad_enabled() or mask is None or mask.dtype != torch.bool:
            return self.kv_proj(memory)
        if mask.shape != (b, 1, 1, s) or not bool(mask.any()):
            return self.kv_proj(memory)
        tokens = NonPad.of(mask.view(b, s))
        return tokens.unpack(self.kv_proj(tokens.pack(memory)))


def _group_rows(x: torch.Tensor, group: int) -> torch.Tensor:
    """(B·G, H, T, Dh) -> (B, H, G·T, Dh): the queries of G consecutive rows side by side."""
    if group == 1:
        return x
    bg, h, t, d = x.shape
    return x.view(bg // group, group, h, t, d).transpose(1, 2).reshape(bg // group, h, -1, d)


def _ungroup_rows(x: torch.Tensor, group: int) -> torch.Tensor:
    """(B, H, G·T, X) -> (B·G, H, T, X), the inverse of `_group_rows`."""
    if group == 1:
        return x
    b, h, gt, d = x.shape
    return x.view(b, h, group, gt // group, d).transpose(1, 2).reshape(b * group, h, -1, d)


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
