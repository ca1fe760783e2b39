"""What greedy and beam search share: the model interface, hypotheses, length limits, one step.

The decoders talk to the model only through `Seq2SeqDecoder` (`encode` + `decode(...,
cache=)`), so tests can drive them with a scripted fake decoder, and to the cache only
through `Cache` (`length`, `reorder`). What a model may offer beyond that (its own cache
factory `new_cache`, `beams_share_source`, `row_max`/`row_topk`: the fast engine's,
`transformer.fast`) is optional: the search is the same without it.

Shape legend: B batch, N rows still being decoded, S source length, T target length,
D d_model, V vocabulary, K beam.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from transformer.models.cache import KVCache


class Cache(Protocol):
    """An incremental-decoding cache (`transformer.models.KVCache` is one).

    Beam search on a model that marks `beams_share_source` (the fast engine's) also uses the
    cache's `reorder_rows(index, memory_rows)` where it has one (`transformer.fast.cache`)."""

    length: int

    def reorder(self, index: Tensor) -> None:
        """Keep/reorder batch rows: index (N',) int64 into the current N rows, for every
        cached tensor (the cross-attention keys/values too: one memory row per row)."""


class Seq2SeqDecoder(Protocol):
    """The part of an encoder-decoder model that decoding needs."""

    def encode(self, src: Tensor) -> Tensor:
        """src (B, S) int64 -> memory (B, S, D)."""

    def decode(
        self, tgt: Tensor, memory: Tensor, src_pad_mask: Tensor, cache: Cache | None = None
    ) -> Tensor:
        """tgt (B, T) int64, memory (B, S, D), src_pad_mask (B, S) -> logits (B, T, V).
        With a cache, tgt holds only the new positions cache.length .. cache.length + T - 1.
        A model marked `beams_share_source` also takes tgt (B·G, T) against memory (B, S, D):
        memory row b serves the G target rows b·G .. b·G + G - 1 (beam search's G = K)."""


CacheFactory = Callable[[], Cache]


@dataclass(frozen=True)
class Hypothesis:
    """One decoded target sentence.

    tokens: generated ids, without the leading <s>; ends with </s> when `finished`.
    logprob: sum of the log-probabilities of `tokens` (natural log).
    score: logprob / lp(len(tokens)), Wu et al. (2016)'s length-normalised score
      (equal to logprob when alpha = 0 and for greedy decoding).
    finished: True when the hypothesis ended with </s>; False when cut at the length limit.
    """

    tokens: list[int]
    logprob: float
    score: float
    finished: bool


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the target vocabulary's special tokens."""

    bos: int
    eos: int
    pad: int


def pad_ids(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str | None = None
) -> Tensor:
    """Id lists right-padded with `pad_id` into one (B, L) int64 tensor, L the longest row."""
    out = torch.full((len(rows), max(map(len, rows))), pad_id, dtype=torch.long)  # (B, L)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out.to(device) if device is not None else out


def length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al., 2016, Section 7); |Y| counts the
    generated tokens including </s>."""
    return ((5.0 + length) / 6.0) ** alpha


def default_cache_factory() -> Cache:
    """A fresh `transformer.models.KVCache`."""
    return KVCache()


LengthArg = int | Tensor | None  # one value for the batch, or one per sentence (B,)


def length_limits(
    src: Tensor,
    pad_id: int,
    max_len: LengthArg,
    max_len_offset: int,
    max_positions: int | None,
) -> Tensor:
    """Maximum number of generated tokens per sentence: (B,) int64.

    `max_len` if given (an int, or a (B,) tensor of per-sentence limits), else the sentence's
    own source length (non-padding tokens) plus `max_len_offset`; capped at `max_positions`
    (the decoder's position budget minus <s>). Using each sentence's own length keeps
    decoding batch-invariant.
    """
    if max_len is not None:
        limits = _per_sentence(max_len, src, "max_len", 1)
    else:
        limits = src.ne(pad_id).sum(dim=1) + max_len_offset
    if max_positions is not None:
        limits = limits.clamp(max=max_positions)
    return limits.clamp(min=1)


def min_lengths(src: Tensor, min_len: int | Tensor) -> Tensor:
    """(B,) int64: </s> is forbidden while the sentence has fewer than this many tokens."""
    return _per_sentence(min_len, src, "min_len", 0)


def _per_sentence(value: int | Tensor, src: Tensor, name: str, low: int) -> Tensor:
    batch = src.size(0)
    if isinstance(value, Tensor):
        if value.shape != (batch,) or value.is_floating_point() or value.is_complex():
            raise ValueError(
                f"{name} as a tensor must be integer of shape ({batch},), got "
                f"{value.dtype} {tuple(value.shape)}"
            )
        if bool((value < low).any()):
            raise ValueError(f"{name} values must be >= {low}")
        return value.to(device=src.device, dtype=torch.long)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(
            f"{name} must be an integer >= {low} or a ({batch},) tensor, got {value!r}"
        )
    return torch.full((batch,), value, dtype=torch.long, device=src.device)


class Lengths(NamedTuple):
    """How long each sentence of a batch may be: the search loops' common prologue."""

    limits: Tensor  # (B,) int64: at most this many generated tokens (`length_limits`)
    mins: Tensor  # (B,) int64: </s> forbidden before this many (`min_lengths`)
    max_min: int  # mins.max(): past this step `block_eos` has nothing to do


def sentence_lengths(
    src: Tensor,
    pad_id: int,
    max_len: LengthArg,
    min_len: int | Tensor,
    max_len_offset: int,
    max_positions: int | None,
) -> Lengths:
    """`length_limits` and `min_lengths` of src (B, S), the arguments checked first."""
    check_offset(max_len_offset)
    mins = min_lengths(src, min_len)
    limits = length_limits(src, pad_id, max_len, max_len_offset, max_positions)
    return Lengths(limits, mins, int(mins.max()))


def check_offset(max_len_offset: int) -> None:
    """Reject a negative or non-integer offset with a clear message."""
    if not isinstance(max_len_offset, int) or max_len_offset < 0:
        raise ValueError(f"max_len_offset must be an integer >= 0, got {max_len_offset!r}")


def next_logits(
    model: Seq2SeqDecoder,
    prefix: Tensor,
    memory: Tensor,
    src_pad_mask: Tensor,
    cache: Cache | None,
    ids: SpecialIds,
    normalize: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Scores of the next token after each row of `prefix`: (logits (N, V) float32, log Z (N,)).

    log Z = logsumexp of the row's logits, so log p(k) = logits[k] - log Z: the decoders take
    their argmax or top-k on the raw logits and subtract log Z from the few they keep, instead
    of writing a log-softmax over the whole vocabulary every step. With `normalize=False` log Z
    is None (greedy argmax needs none). <pad> and <s> (unless it is also </s>) can never be
    generated: their logits become -inf after log Z is taken, so every other token keeps the
    model's own log-probability.

    prefix (N, t) int64 starts with <s>. Without a cache the whole prefix is recomputed; with
    one only the positions not yet cached (prefix[:, cache.length:]) are fed.
    """
    if cache is None:
        logits = model.decode(prefix, memory, src_pad_mask)  # (N, t, V)
    else:
        logits = model.decode(prefix[:, cache.length :], memory, src_pad_mask, cache=cache)
    logits = logits[:, -1].float()  # (N, V)
    log_z = torch.logsumexp(logits, dim=-1) if normalize else None  # (N,)
    logits[:, ids.pad] = float("-inf")
    if ids.bos != ids.eos:
        logits[:, ids.bos] = float("-inf")
    return logits, log_z


def plain_row_max(logits: Tensor) -> tuple[Tensor, Tensor]:
    """logits (N, V) -> (row maxima (N,), index of each row's first maximum (N,) int64)."""
    return logits.max(dim=-1)


def plain_row_topk(logits: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """logits (N, V) -> (the k largest values of each row, sorted (N, k), their indices)."""
    return logits.topk(k, dim=-1)


def search_ops(model) -> tuple[Callable, Callable]:
    """(row_max, row_topk) for decoding `model`: the model's own where it offers them (the
    fast engine's, `transformer.fast.topk`), else torch's `max` and `topk`."""
    return getattr(model, "row_max", plain_row_max), getattr(model, "row_topk", plain_row_topk)


def new_cache(model, make_cache: CacheFactory | None) -> Cache:
    """A fresh decoding cache: `make_cache()` when given, else the model's `new_cache()`
    where it has one, else a `transformer.models.KVCache`."""
    if make_cache is not None:
        return make_cache()
    factory = getattr(model, "new_cache", None)
    return factory() if factory is not None else default_cache_factory()


def block_eos(logprobs: Tensor, eos_id: int, step: int, mins: Tensor, max_min: int) -> Tensor:
    """Forbid </s> as generated token number `step` (1-based) in the rows whose minimum length
    `mins` (N,) is >= step, so that at least that many tokens precede </s>. logprobs (N, ..., V)
    is modified in place; `max_min` = mins.max() skips the work once every minimum is met."""
    if step <= max_min:
        blocked = mins.ge(step).view(-1, *([1] * (logprobs.dim() - 2)))  # (N, 1, ...)
        logprobs[..., eos_id].masked_fill_(blocked, float("-inf"))
    return logprobs
