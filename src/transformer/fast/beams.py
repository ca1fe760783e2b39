"""Beams sharing their source: the K beams of a sentence read its encoder output once.

Beam search decodes K target rows per sentence. Repeating each sentence's memory K times
(what the reference core needs) projects, stores and reads the same cross-attention keys and
values K times. Instead, with `SharedSourceAttention` in the cross-attention, G >= 1
consecutive rows of the decoder's queries attend to one memory row: their G·T queries are put
side by side as one query block of that row, which is the same attention as G copies of the
memory (docs/benchmarks.md, "Decoding at 1.5x").

`share_source(model)` wraps every cross-attention's attention in it and sets
`model.beams_share_source = True`, which `transformer.decoding.beam_search` reads: it then
keeps one memory row per sentence, and reorders the cache's cross-attention rows by sentence
(`FastKVCache.reorder_rows`) instead of by beam.

Shape legend: B memory rows (sentences), G target rows per memory row (beams), H heads,
T queries per row, S source length, Dk/Dv head dims.
"""

from __future__ import annotations

import torch
from torch import nn

from transformer.layers.mha import CrossAttention


def group_rows(x: torch.Tensor, group: int) -> torch.Tensor:
    """(B·G, H, T, X) -> (B, H, G·T, X): the queries of G consecutive rows side by side."""
    if group == 1:
        return x
    bg, h, t, d = x.shape
    return x.view(bg // group, group, h, t, d).transpose(1, 2).reshape(bg // group, h, -1, d)


def ungroup_rows(x: torch.Tensor, group: int) -> torch.Tensor:
    """(B, H, G·T, X) -> (B·G, H, T, X), the inverse of `group_rows`."""
    if group == 1:
        return x
    b, h, gt, d = x.shape
    return x.view(b, h, group, gt // group, d).transpose(1, 2).reshape(b * group, h, -1, d)


class SharedSourceAttention(nn.Module):
    """Wraps a cross-attention's attention module (`inner`): q (B·G, H, T, Dk) against
    k (B, H, S, Dk), v (B, H, S, Dv), mask (B, 1, 1, S) -> (out (B·G, H, T, Dv), weights
    (B·G, H, T, S) | None). No parameters."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, q, k, v, mask=None, causal=False, need_weights=False):
        rows, memory_rows = q.size(0), k.size(0)
        if causal or rows % max(memory_rows, 1) or (memory_rows == 0 < rows):
            if causal:
                raise ValueError("SharedSourceAttention is for cross-attention (not causal)")
            raise ValueError(
                f"the decoder's batch ({rows} rows) must be a multiple of memory's "
                f"({memory_rows} rows): each memory row serves that many consecutive rows"
            )
        group = rows // memory_rows if memory_rows else 1  # G
        out, weights = self.inner(group_rows(q, group), k, v, mask, need_weights=need_weights)
        weights = None if weights is None else ungroup_rows(weights, group)
        return ungroup_rows(out, group), weights  # (B·G, H, T, Dv), (B·G, H, T, S) | None


def share_source(model: nn.Module) -> int:
    """Wrap the attention of every cross-attention of `model` in `SharedSourceAttention` and
    mark the model `beams_share_source`; returns how many were wrapped (0: nothing marked)."""
    count = 0
    for module in model.modules():
        if isinstance(module, CrossAttention) and not isinstance(
            module.attention, SharedSourceAttention
        ):
            module.attention = SharedSourceAttention(module.attention)
            count += 1
    if count:
        model.beams_share_source = True
    return count
