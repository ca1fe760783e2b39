"""Corpus BLEU and chrF through sacreBLEU (Post, 2018), with their reproducibility signatures.

Three figures, all on detokenized text (what the model's tokenizer decodes to):
- `bleu`: sacreBLEU's standard corpus BLEU, cased, mteval-v13a tokenization
  (`BLEU(tokenize="13a")`) — the figure to compare across papers, quoted with its signature;
- `chrf`: character n-gram F-score (Popović, 2015), sacreBLEU defaults (n=6, beta=2);
- `bleu_lc`: lowercased BLEU with the same 13a tokenization (`BLEU(tokenize="13a",
  lowercase=True)`). This stands in for the "tokenized BLEU" most Multi30k papers report
  (Moses tokenizer + lowercasing + multi-bleu.perl). The two tokenizers differ in details:
  13a keeps apostrophes and hyphens inside words ("don't", "t-shirt") where Moses splits
  ("don 't", "t @-@ shirt" with aggressive hyphen splitting), so the figures are close but not
  identical; the signature says exactly what was computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sacrebleu.metrics import BLEU, CHRF


@dataclass(frozen=True)
class TranslationScores:
    """Corpus-level scores (0..100) and the sacreBLEU signature of each."""

    bleu: float
    bleu_signature: str
    bleu_detail: str  # n-gram precisions, brevity penalty, lengths (sacreBLEU's own format)
    chrf: float
    chrf_signature: str
    bleu_lc: float
    bleu_lc_signature: str
    sentences: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable lines, one figure each, with its signature."""
        return [
            f"sacreBLEU (cased, 13a)  {self.bleu:6.2f}  {self.bleu_detail}",
            f"  signature: {self.bleu_signature}",
            f"chrF                    {self.chrf:6.2f}",
            f"  signature: {self.chrf_signature}",
            f"BLEU lowercased (13a)   {self.bleu_lc:6.2f}",
            f"  signature: {self.bleu_lc_signature}",
        ]


def check_parallel(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    """Reject hypothesis/reference lists of different lengths or containing newlines."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: "
            "the files must have one sentence per line, in the same order"
        )
    for name, lines in (("hypothesis", hypotheses), ("reference", references)):
        for i, line in enumerate(lines, 1):
            if "\n" in line:
                raise ValueError(f"{name} {i} contains a newline")


def score_translations(hypotheses: Sequence[str], references: Sequence[str]) -> TranslationScores:
    """sacreBLEU (cased 13a), chrF and lowercased 13a BLEU of detokenized hypotheses against
    one reference per sentence."""
    check_parallel(hypotheses, references)
    if not hypotheses:
        raise ValueError("no sentences to score")
    hyps, refs = list(hypotheses), [list(references)]
    cased = BLEU(tokenize="13a")
    lower = BLEU(tokenize="13a", lowercase=True)
    chrf = CHRF()
    bleu_score = cased.corpus_score(hyps, refs)
    detail = str(bleu_score).split("=", 1)[1].split(None, 1)[1]  # "p1/p2/p3/p4 (BP = ...)"
    return TranslationScores(
        bleu=float(bleu_score.score),
        bleu_signature=str(cased.get_signature()),
        bleu_detail=detail,
        chrf=float(chrf.corpus_score(hyps, refs).score),
        chrf_signature=str(chrf.get_signature()),
        bleu_lc=float(lower.corpus_score(hyps, refs).score),
        bleu_lc_signature=str(lower.get_signature()),
        sentences=len(hyps),
    )
