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
    pad_ids,
)
from transformer.decoding.greedy import greedy_decode
from transformer.decoding.sampling import filter_logits, generate, sample_next
from transformer.decoding.translator import SearchSettings, Translation, Translator

__all__ = [
    "Cache",
    "Hypothesis",
    "SearchSettings",
    "Seq2SeqDecoder",
    "SpecialIds",
    "Translation",
    "Translator",
    "beam_search",
    "filter_logits",
    "generate",
    "greedy_decode",
    "length_limits",
    "length_penalty",
    "pad_ids",
    "sample_next",
]
