"""Faster row-wise max and top-k over the vocabulary for the decoders, on the CPU.

torch's reductions that track indices (`max(dim=-1)`, `topk`) are not vectorised on the
CPU; its `amax` is (docs/benchmarks.md, decoding). `row_max` and `row_topk` give the same
values (and, for `row_max`, the same first index) through block maxima. `use_fast_topk(model)`
offers them to the decoders (`transformer.decoding.common.search_ops` reads `model.row_max` /
`model.row_topk`).

Shape legend: N rows, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_BLOCK = 64  # row_max's block width: 8,000 logits -> 125 block maxima


def _whole_blocks(logits: Tensor) -> Tensor:
    """(N, V) -> the (N, V // 64, 64) view of its whole blocks of 64 (the tail left out)."""
    n, vocab = logits.shape
    return logits[:, : vocab - vocab % _BLOCK].reshape(n, vocab // _BLOCK, _BLOCK)


def row_max(logits: Tensor) -> tuple[Tensor, Tensor]:
    """logits (N, V) -> (the row maxima (N,), the index of each maximum's first occurrence
    (N,) int64): `logits.max(dim=-1)`, faster on the CPU. torch's reduction that tracks the
    index is not vectorised there, its `amax` is: so take the maxima of blocks of 64 logits,
    then the index inside the first block that holds the row's maximum. Rows with NaN are
    left to `max`."""
    n, vocab = logits.shape
    blocks = vocab // _BLOCK
    if not logits.is_cpu or blocks < 2:
        return logits.max(dim=-1)
    head = _whole_blocks(logits)  # (N, blocks, 64)
    best_block = head.amax(dim=-1).argmax(dim=-1)  # (N,) first block holding the maximum
    inside = head[torch.arange(n, device=logits.device), best_block]  # (N, 64)
    value, offset = inside.max(dim=-1)
    index = best_block * _BLOCK + offset
    nan = value.isnan()
    if vocab > blocks * _BLOCK:  # the tail after the last whole block wins only if larger
        tail_value, tail_offset = logits[:, blocks * _BLOCK :].max(dim=-1)
        later = tail_value > value
        value = torch.where(later, tail_value, value)
        index = torch.where(later, tail_offset + blocks * _BLOCK, index)
        nan |= tail_value.isnan()
    return logits.max(dim=-1) if bool(nan.any()) else (value, index)


def row_topk(logits: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """logits (N, V) -> (the k largest values of each row, sorted, (N, k); their indices (N, k)
    int64): `logits.topk(k, dim=-1)`, faster on the CPU for k << V (beam search's 2K per row).

    torch's top-k walks every logit of a row, unvectorised; `amax` over blocks of 64 is
    vectorised. A row's k largest values lie in its k
    blocks with the largest maxima (plus the tail after the last whole block): a logit
    outside them is beaten by k block maxima. So take those k·64 candidates and their top k.
    Among equal values the indices returned may differ from `topk`'s (which does not order
    ties either); the values are the same. Rows with NaN are left to `topk`."""
    n, vocab = logits.shape
    blocks = vocab // _BLOCK
    if not logits.is_cpu or blocks < 4 * k:
        return logits.topk(k, dim=-1)
    cut = blocks * _BLOCK
    head = _whole_blocks(logits)  # (N, blocks, 64)
    block_max = head.amax(dim=-1)  # (N, blocks)
    chosen = block_max.topk(k, dim=-1).indices  # (N, k) blocks holding the k largest
    cand = head[torch.arange(n, device=logits.device).unsqueeze(1), chosen].view(n, -1)
    index = (chosen.unsqueeze(-1) * _BLOCK + torch.arange(_BLOCK)).view(n, -1)  # (N, k·64)
    if vocab > cut:  # the tail is always a candidate
        cand = torch.cat([cand, logits[:, cut:]], dim=1)
        index = torch.cat([index, torch.arange(cut, vocab).expand(n, -1)], dim=1)
    values, pos = cand.topk(k, dim=-1)  # (N, k)
    if bool(block_max.isnan().any()) or bool(cand.isnan().any()):
        return logits.topk(k, dim=-1)
    return values, index.gather(1, pos)


def use_fast_topk(model: nn.Module) -> int:
    """Offer `row_max` and `row_topk` to the decoders of `model`; returns 1."""
    model.row_max, model.row_topk = row_max, row_topk
    return 1
