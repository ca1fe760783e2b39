"""Decoding: batched greedy search, beam search (Wu et al. 2016 length penalty), sampling.

All search functions drive the model through `encode` / `decode(..., cache=)` and reuse the
model's key/value cache for incremental decoding (`use_cache=False` recomputes every prefix).
"""

from transformer.decoding.beam import beam_search
from transformer.decoding.common import (
    Cache,
    Hypothesis,
    Seq2SeqDecoder,
    SpecialIds,
    length_limits,
    length_penalty,
)
from transformer.decoding.greedy import greedy_decode

__all__ = [
    "Cache",
    "Hypothesis",
    "Seq2SeqDecoder",
    "SpecialIds",
    "beam_search",
    "greedy_decode",
    "length_limits",
    "length_penalty",
]
