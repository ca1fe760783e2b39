"""Text in, text out: a model + tokenizer + search settings, translating lines in batches.

`Translator.stream(lines)` reads an iterable of source lines lazily, groups them into batches
of at most `max_tokens` source tokens (sorted by length inside a batch to cut padding) and
yields the results in input order, batch by batch — so it works on an endless stdin.

Shape legend: B batch, S source length.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from transformer.decoding.beam import beam_search
from transformer.decoding.common import Hypothesis, Seq2SeqDecoder, SpecialIds, pad_ids
from transformer.decoding.greedy import greedy_decode


@dataclass(frozen=True)
class SearchSettings:
    """beam 1 = greedy decoding; otherwise beam search with length penalty `alpha`."""

    beam: int = 4
    alpha: float = 0.6
    n_best: int = 1
    max_len_offset: int = 50
    use_cache: bool = True
    exact: bool = False  # stop on the bound at the length limit (`beam_search`'s `exact`)

    def __post_init__(self) -> None:
        if not isinstance(self.beam, int) or self.beam < 1:
            raise ValueError(f"beam must be a positive integer, got {self.beam!r}")
        if not 1 <= self.n_best <= self.beam:
            raise ValueError(
                f"n_best must be between 1 and the beam ({self.beam}), got {self.n_best!r}"
            )
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")


@dataclass(frozen=True)
class Translation:
    """One source line's result: detokenized best translation and the n-best hypotheses."""

    source: str
    text: str
    hypotheses: list[Hypothesis]


class Translator:
    """Translate text with an encoder-decoder model (eval mode is set here).

    encode: text -> source ids (no <s>/</s>, as in training); decode: ids -> text.
    `max_positions` is the model's position budget (config.max_len): longer sources are cut
    (with a warning on stderr) and outputs are limited to it.
    """

    def __init__(
        self,
        model: Seq2SeqDecoder,
        encode: Callable[[str], list[int]],
        decode: Callable[[list[int]], str],
        ids: SpecialIds,
        settings: SearchSettings,
        max_positions: int,
        device: torch.device | str = "cpu",
    ) -> None:
        if isinstance(model, torch.nn.Module):
            model.eval()
        self.model, self.encode, self.decode, self.ids = model, encode, decode, ids
        self.settings, self.max_positions = settings, max_positions
        self.device = torch.device(device)

    def _source_ids(self, line: str) -> list[int]:
        ids = self.encode(line)
        if len(ids) > self.max_positions:
            print(
                f"warning: a source line of {len(ids)} tokens was cut to the model's "
                f"{self.max_positions} positions",
                file=sys.stderr,
            )
            ids = ids[: self.max_positions]
        return ids

    def translate_ids(self, sources: Sequence[list[int]]) -> list[list[Hypothesis]]:
        """Search a batch of source id lists (each non-empty); n-best lists in input order."""
        src = pad_ids(sources, self.ids.pad, self.device)  # (B, S)
        s = self.settings
        common = dict(
            max_len_offset=s.max_len_offset,
            max_positions=self.max_positions - 1,
            use_cache=s.use_cache,
        )
        if s.beam == 1:  # scores are only shown for n-best lists, which need a beam
            hyps = greedy_decode(self.model, src, self.ids, with_scores=False, **common)
            return [[h] for h in hyps]
        return beam_search(
            self.model,
            src,
            self.ids,
            beam_size=s.beam,
            alpha=s.alpha,
            n_best=s.n_best,
            exact=s.exact,
            **common,
        )

    def translate(self, lines: Sequence[str]) -> list[Translation]:
        """Translate one batch of lines (empty lines give empty translations)."""
        return self._translate(lines, [self._source_ids(line) for line in lines])

    def _translate(self, lines: Sequence[str], encoded: list[list[int]]) -> list[Translation]:
        todo = [i for i, ids in enumerate(encoded) if ids]
        todo.sort(key=lambda i: len(encoded[i]))  # similar lengths side by side: less padding
        results: list[list[Hypothesis]] = [[] for _ in lines]
        if todo:
            for i, hyps in zip(todo, self.translate_ids([encoded[i] for i in todo]), strict=True):
                results[i] = hyps
        return [
            Translation(line, self.decode(h[0].tokens) if h else "", h)
            for line, h in zip(lines, results, strict=True)
        ]

    def stream(
        self, lines: Iterable[str], max_tokens: int = 4000, max_sentences: int = 128
    ) -> Iterator[Translation]:
        """Translate lines lazily, in batches of at most `max_tokens` source tokens or
        `max_sentences` lines; yields in input order."""
        if max_tokens < 1 or max_sentences < 1:
            raise ValueError("max_tokens and max_sentences must be >= 1")
        batch: list[str] = []
        encoded: list[list[int]] = []
        tokens = 0
        for line in lines:
            ids = self._source_ids(line.rstrip("\r\n"))
            if batch and tokens + len(ids) > max_tokens:  # would overflow: flush first
                yield from self._translate(batch, encoded)
                batch, encoded, tokens = [], [], 0
            batch.append(line.rstrip("\r\n"))
            encoded.append(ids)
            tokens += len(ids)
            if len(batch) >= max_sentences or tokens >= max_tokens:  # full: flush now, so an
                yield from self._translate(batch, encoded)  # interactive user gets an answer
                batch, encoded, tokens = [], [], 0
        if batch:
            yield from self._translate(batch, encoded)
