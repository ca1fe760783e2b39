"""The incremental-decoding key/value cache shared by `Transformer.decode` and `GPT`.

Shape legend: B batch, H heads, L cached target positions, S source length, Dk/Dv head dims.
"""

from __future__ import annotations

import torch

from transformer.layers.mha import LayerCache


class KVCache:
    """Per-layer self-attention keys/values (B, H, L, Dk|Dv) of every target position decoded
    so far, and the cross-attention keys/values (B, H, S, Dk|Dv) of the encoder output.

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

    def reorder(self, index: torch.Tensor, cross: bool | torch.Tensor = True) -> None:
        """Keep/reorder batch rows of every cached tensor: index (B',) int64 into the batch.

        The cross-attention keys/values have one row per memory row. `cross=True`: they follow
        `index` too (memory rows are target rows, as in greedy decoding). `cross=False`: they
        stay as they are (valid when each new row comes from a row with the same source, as
        beams within a sentence; a copy saved every beam-search step). `cross` an int64 index
        (M',): keep those memory rows (beam search with memory shared by a sentence's beams,
        when sentences leave). Callers reorder `memory` and `src_pad_mask` themselves."""
        _check_index("index", index)
        if not isinstance(cross, bool):
            _check_index("cross", cross)
        for layer in self.layers:
            layer.reorder(index, cross)

    def __repr__(self) -> str:
        return f"KVCache(length={self._length}, layers={len(self.layers)})"


def _check_index(name: str, value: object) -> None:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.dim() != 1:
        what = (
            f"{value.dtype} of shape {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        raise ValueError(f"reorder expects {name} as a 1-D int64 index, got {what}")
