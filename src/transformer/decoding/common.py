"""What greedy and beam search share: the model interface, hypotheses, length limits, one step.

The decoders talk to the model only through `Seq2SeqDecoder` (`encode` + `decode(...,
cache=)`), so tests can drive them with a scripted fake decoder, and to the cache only
through `Cache` (`length`, `reorder`).

Shape legend: B batch, N rows still being decoded, S source length, T target length,
D d_model, V vocabulary, K beam.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


class Cache(Protocol):
    """An incremental-decoding cache (`transformer.models.KVCache` is one)."""

    length: int

    def reorder(self, index: Tensor) -> None:
        """Keep/reorder batch rows: index (N',) int64 into the current N rows."""


class Seq2SeqDecoder(Protocol):
    """The part of an encoder-decoder model that decoding needs."""

    def encode(self, src: Tensor) -> Tensor:
        """src (B, S) int64 -> memory (B, S, D)."""

    def decode(
        self, tgt: Tensor, memory: Tensor, src_pad_mask: Tensor, cache: Cache | None = None
    ) -> Tensor:
        """tgt (B, T) int64 -> logits (B, T, V). With a cache, tgt holds only the new positions
        cache.length .. cache.length + T - 1."""


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


def length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al., 2016, Section 7); |Y| counts the
    generated tokens including </s>."""
    return ((5.0 + length) / 6.0) ** alpha


def default_cache_factory() -> Cache:
    """A fresh `transformer.models.KVCache` (imported lazily: the models package is optional
    for callers that bring their own decoder and cache)."""
    from transformer.models import KVCache

    return KVCache()


def length_limits(
    src: Tensor,
    pad_id: int,
    max_len: int | None,
    max_len_offset: int,
    max_positions: int | None,
) -> Tensor:
    """Maximum number of generated tokens per sentence: (B,) int64.

    `max_len` if given, else the sentence's own source length (non-padding tokens) plus
    `max_len_offset`; capped at `max_positions` (the decoder's position budget minus <s>).
    Using each sentence's own length keeps decoding batch-invariant.
    """
    if max_len is not None:
        limits = torch.full((src.size(0),), max_len, dtype=torch.long, device=src.device)
    else:
        limits = src.ne(pad_id).sum(dim=1) + max_len_offset
    if max_positions is not None:
        limits = limits.clamp(max=max_positions)
    return limits.clamp(min=1)


def check_lengths(max_len: int | None, min_len: int, max_len_offset: int) -> None:
    """Reject impossible length settings with a clear message."""
    if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
        raise ValueError(f"max_len must be a positive integer or None, got {max_len!r}")
    if not isinstance(min_len, int) or min_len < 0:
        raise ValueError(f"min_len must be an integer >= 0, got {min_len!r}")
    if not isinstance(max_len_offset, int) or max_len_offset < 0:
        raise ValueError(f"max_len_offset must be an integer >= 0, got {max_len_offset!r}")


def next_logprobs(
    model: Seq2SeqDecoder,
    prefix: Tensor,
    memory: Tensor,
    src_pad_mask: Tensor,
    cache: Cache | None,
    ids: SpecialIds,
) -> Tensor:
    """Log-probabilities of the next token after each row of `prefix`: (N, V) float32.

    prefix (N, t) int64 starts with <s>. Without a cache the whole prefix is recomputed; with
    one only the positions not yet cached (prefix[:, cache.length:]) are fed. <pad> and <s>
    (unless it is also </s>) can never be generated: their log-probabilities become -inf
    after normalisation, so every other token keeps the model's own log-probability.
    """
    if cache is None:
        logits = model.decode(prefix, memory, src_pad_mask)  # (N, t, V)
    else:
        logits = model.decode(prefix[:, cache.length :], memory, src_pad_mask, cache=cache)
    logp = logits[:, -1].float().log_softmax(dim=-1)  # (N, V)
    logp[:, ids.pad] = float("-inf")
    if ids.bos != ids.eos:
        logp[:, ids.bos] = float("-inf")
    return logp


def block_eos(logprobs: Tensor, eos_id: int, step: int, min_len: int) -> Tensor:
    """Forbid </s> as generated token number `step` (1-based) while step <= min_len, so that
    at least `min_len` tokens precede </s>. logprobs (..., V), modified in place."""
    if step <= min_len:
        logprobs[..., eos_id] = float("-inf")
    return logprobs
