"""The incremental-decoding key/value cache shared by `Transformer.decode` and `GPT`.

Shape legend: B batch, H heads, L cached target positions, S source length, Dk/Dv head dims.
"""

from __future__ import annotations

import torch

from transformer.layers.mha import LayerCache


class KVCache:
    """Per-layer self-attention keys/values (B, H, L, Dk|Dv) of every target position decoded
    so far, and the cross-attention keys/values (B, H, S, Dk|Dv) of the encoder output
    (`LayerCache` per layer).

    Start empty (`KVCache()`) and pass it to each `decode`/`GPT` call with only the new
    tokens: positions `length .. length + T_new - 1`. The model appends to it; `reorder`
    selects batch rows (beam search, dropping finished sentences).
    """

    def __init__(self) -> None:
        self.layers: list[LayerCache] = []
        self._length = 0

    @property
    def length(self) -> int:
        """Number of target positions cached."""
        return self._length

    def layer(self, i: int) -> LayerCache:
        """The cache of decoder layer i (created on first use)."""
        while len(self.layers) <= i:
            self.layers.append(LayerCache())
        return self.layers[i]

    def advance(self, n_new: int) -> None:
        """Record that the model appended `n_new` positions (called by the model)."""
        self._length += n_new

    def reorder(self, index: torch.Tensor) -> None:
        """Keep/reorder batch rows of every cached tensor: index (B',) int64 into the batch
        (beam search following its beams, greedy dropping finished sentences). Callers
        reorder `memory` and `src_pad_mask` the same way themselves."""
        check_index("index", index)
        for layer in self.layers:
            layer.reorder(index)

    def __repr__(self) -> str:
        return f"KVCache(length={self._length}, layers={len(self.layers)})"


def check_index(name: str, value: object) -> None:
    """A user-facing check that `value` is a 1-D int64 index tensor."""
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.dim() != 1:
        what = (
            f"{value.dtype} of shape {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        raise ValueError(f"reorder expects {name} as a 1-D int64 index, got {what}")
