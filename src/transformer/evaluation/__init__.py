"""Evaluation: sacreBLEU / chrF / lowercased BLEU of translations, perplexity of references."""

from transformer.evaluation.bleu import TranslationScores, score_translations
from transformer.evaluation.perplexity import Perplexity, batch_nll, corpus_perplexity

__all__ = [
    "Perplexity",
    "TranslationScores",
    "batch_nll",
    "corpus_perplexity",
    "score_translations",
]
