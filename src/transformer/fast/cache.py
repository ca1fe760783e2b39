"""The decoding cache of the fast engine: a lazy reorder written straight into the new cache,
and a reorder by sentence for the cross-attention rows when beams share their source.

Beam search reorders the cache and appends one position to it at every step. The reference
`LayerCache` does both (select the rows, then concatenate: two passes over the cache). Here
`reorder` only records the rows; the next `append` selects them and writes the new positions
into one freshly allocated tensor (`out=` writes, one pass). Reading `k` or `v` applies a
pending reorder.

`use_fast_cache(model)` sets `model.new_cache = FastKVCache`, the factory the decoders call;
for a `GPT`, `GrowingKVCache`: appends write in place into a buffer with spare room (one
position's copy per step instead of a concatenation of the whole cache: 12% of a Shakespeare
GPT's sampling step at one row, `transformer bench lm`).

Shape legend: B batch rows, M memory rows, H heads, L cached positions, T new positions,
S source length, Dh head dim.
"""

from __future__ import annotations

import torch
from torch import nn

from transformer.layers.mha import LayerCache
from transformer.models.cache import KVCache, check_index
from transformer.models.gpt import GPT


def select_and_append(old: torch.Tensor, rows: torch.Tensor | None, new: torch.Tensor):
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


class LazyLayerCache(LayerCache):
    """`LayerCache` whose reorder of k, v is applied by the next append (see above)."""

    def __init__(self) -> None:
        super().__init__()
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._rows: torch.Tensor | None = None  # a reorder not yet applied to _k, _v

    @property
    def k(self) -> torch.Tensor | None:
        self._apply_rows()
        return self._k

    @k.setter
    def k(self, value: torch.Tensor | None) -> None:
        self._k, self._rows = value, None

    @property
    def v(self) -> torch.Tensor | None:
        self._apply_rows()
        return self._v

    @v.setter
    def v(self, value: torch.Tensor | None) -> None:
        self._v = value

    def _apply_rows(self) -> None:
        if self._rows is not None and self._k is not None:
            self._k, self._v = (x.index_select(0, self._rows) for x in (self._k, self._v))
        self._rows = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys/values (B, H, T, Dk|Dv) along the position axis; return all."""
        if self._k is None:
            self._k, self._v = k, v
        else:
            self._k = select_and_append(self._k, self._rows, k)  # (B, H, L + T, Dk)
            self._v = select_and_append(self._v, self._rows, v)
        self._rows = None
        return self._k, self._v

    def reorder_rows(self, index: torch.Tensor, memory_rows: torch.Tensor | None) -> None:
        """Target rows follow index (B',) (lazily); the cross-attention rows keep
        `memory_rows` (M',) int64, or stay as they are when None."""
        self._rows = index if self._rows is None else self._rows.index_select(0, index)
        if memory_rows is not None and self.cross_k is not None:
            self.cross_k = self.cross_k.index_select(0, memory_rows)
            self.cross_v = self.cross_v.index_select(0, memory_rows)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep/reorder batch rows of every tensor (one memory row per target row)."""
        self.reorder_rows(index, index)


class FastKVCache(KVCache):
    """`KVCache` of `LazyLayerCache`s, with `reorder_rows` for beams sharing their source."""

    def layer(self, i: int) -> LayerCache:
        while len(self.layers) <= i:
            self.layers.append(LazyLayerCache())
        return self.layers[i]

    def reorder_rows(self, index: torch.Tensor, memory_rows: torch.Tensor | None) -> None:
        """Target rows follow index (N',) int64; the cross-attention keys/values, one row per
        memory row, keep `memory_rows` (M',) int64 (sentences leaving), or stay as they are
        when None (every row moved within its own sentence's beams)."""
        check_index("index", index)
        if memory_rows is not None:
            check_index("memory_rows", memory_rows)
        for layer in self.layers:
            layer.reorder_rows(index, memory_rows)


class GrowingLayerCache(LayerCache):
    """`LayerCache` whose keys/values live in a buffer with room to spare (capacity doubled
    when full): appending T positions writes them in place, where `torch.cat` copies the whole
    cache every step; k, v are views of the filled part. Under autograd, plain concatenation."""

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys/values (B, H, T, Dk|Dv) along the position axis; return all."""
        if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
            return super().append(k, v)
        n, t = 0 if self.k is None else self.k.size(2), k.size(2)
        buf_k, buf_v = getattr(self, "_buf", (None, None))
        if buf_k is None or n + t > buf_k.size(2) or self.k.data_ptr() != buf_k.data_ptr():
            cap = max(2 * n, n + t, 64)
            buf_k = k.new_empty(k.size(0), k.size(1), cap, k.size(3))  # (B, H, cap, Dk)
            buf_v = v.new_empty(v.size(0), v.size(1), cap, v.size(3))
            if n:
                buf_k[:, :, :n], buf_v[:, :, :n] = self.k, self.v
            self._buf = (buf_k, buf_v)
        buf_k[:, :, n : n + t], buf_v[:, :, n : n + t] = k, v
        self.k, self.v = buf_k[:, :, : n + t], buf_v[:, :, : n + t]  # (B, H, L + T, Dk|Dv)
        return self.k, self.v


class GrowingKVCache(KVCache):
    """`KVCache` of `GrowingLayerCache`s: the GPT's cache (sampling never reorders; a
    reorder selects rows into fresh tensors, and the next append re-buffers them)."""

    def layer(self, i: int) -> LayerCache:
        while len(self.layers) <= i:
            self.layers.append(GrowingLayerCache())
        return self.layers[i]


def use_fast_cache(model: nn.Module) -> int:
    """Give `model` the `FastKVCache` factory (`model.new_cache`), `GrowingKVCache` for a
    decoder-only `GPT`; returns 1."""

    model.new_cache = GrowingKVCache if isinstance(model, GPT) else FastKVCache
    return 1
