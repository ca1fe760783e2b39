"""Validation BLEU during training: greedy decoding of a fixed sample of validation sentences.

Perplexity falls long after BLEU stops rising (and label smoothing makes it a loose guide), so
with `train.val_bleu = N` > 0 every validation also translates N validation sentences greedily
(an evenly spaced, fixed sample: the same sentences every time) and scores them with sacreBLEU
(cased, 13a) against their references. The best checkpoint (`checkpoints/best.json`,
`translate --checkpoint best`) is then the one with the highest validation BLEU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from sacrebleu.metrics import BLEU
from torch import nn

from transformer.decoding.common import SpecialIds
from transformer.decoding.translator import SearchSettings, Translator


@dataclass(frozen=True)
class BleuProbe:
    """What validation BLEU needs: source ids (no <s>/</s>), references, a detokenizer."""

    sources: list[list[int]]
    references: list[str]
    decode: Callable[[list[int]], str]
    ids: SpecialIds

    @classmethod
    def sample(
        cls,
        sources: Sequence[list[int]],
        references: Sequence[str],
        n: int | str,
        decode: Callable[[list[int]], str],
        ids: SpecialIds,
    ) -> BleuProbe:
        """Take min(n, len) pairs spread evenly over the split (its order, not at random);
        n = "all" (`train.val_bleu = "all"`) takes every pair."""
        if len(sources) != len(references):
            raise ValueError(f"{len(sources)} sources but {len(references)} references")
        total = len(sources)
        n = total if n == "all" else n
        picked = sorted({i * total // n for i in range(n)}) if n < total else range(total)
        picked = [i for i in picked if sources[i]]  # an empty source has nothing to translate
        return cls([list(sources[i]) for i in picked], [references[i] for i in picked], decode, ids)


def probe_bleu(
    model: nn.Module,
    probe: BleuProbe,
    max_positions: int,
    device: torch.device,
    batch_sentences: int = 128,
    max_len_offset: int = 50,
) -> float:
    """Greedy-decode the probe's sources (batches of similar lengths) and return sacreBLEU;
    outputs are limited to source length + `max_len_offset` tokens.

    Leaves the model in eval mode; the trainer switches back to train mode every step."""
    translator = Translator(
        model,
        lambda _: [],
        probe.decode,
        probe.ids,
        SearchSettings(beam=1, max_len_offset=max_len_offset),
        max_positions=max_positions,
        device=device,
    )
    order = sorted(range(len(probe.sources)), key=lambda i: len(probe.sources[i]))
    outputs = [""] * len(order)
    for start in range(0, len(order), batch_sentences):
        chunk = order[start : start + batch_sentences]
        hyps = translator.translate_ids([probe.sources[i][:max_positions] for i in chunk])
        for i, nbest in zip(chunk, hyps, strict=True):
            outputs[i] = probe.decode(nbest[0].tokens)
    return float(BLEU(tokenize="13a").corpus_score(outputs, [probe.references]).score)
