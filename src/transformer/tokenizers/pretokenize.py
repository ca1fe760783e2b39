"""Pre-tokenization for classic `BPE`: the pipeline of stages that cut text into words.

1. `whitespace`: the words are the pieces between spaces and line breaks (`subword-nmt`'s
   convention: tabs and other whitespace are ordinary characters);
2. `punct` (optional, `BPE(split_punct=True)`): punctuation is split off each word and marked
   with a joiner (`punct.split_word`), so "Büsche." is the two words "Büsche" and "￭.".

A `PreTokenizer` names its stages (they are saved in the tokenizer file and mapped stage by
stage to a Hugging Face normalizer and decoder in `hf.py`), cuts text into words and undoes its
stages after decoding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from transformer.tokenizers import punct
from transformer.tokenizers.files import TokenizerError

WHITESPACE, PUNCT = "whitespace", "punct"
PIPELINES = ((WHITESPACE,), (WHITESPACE, PUNCT))  # the stage sequences a BPE can have


def split_words(text: str) -> list[str]:
    """The words of `text`: maximal runs of characters other than space, '\\n' and '\\r'."""
    if "\n" in text or "\r" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return [w for w in text.split(" ") if w]


def count_words(lines: Iterable[str], block_size: int = 4096) -> Counter[str]:
    """Word frequencies of many lines (`split_words` of each), a block of lines at a time."""
    counts: Counter[str] = Counter()
    block: list[str] = []
    for line in lines:
        block.append(line)
        if len(block) == block_size:
            counts.update(" ".join(block).replace("\r", " ").replace("\n", " ").split(" "))
            block.clear()
    counts.update(" ".join(block).replace("\r", " ").replace("\n", " ").split(" "))
    counts.pop("", None)
    return counts


class PreTokenizer:
    """The stages before BPE: `stages` is one of `PIPELINES`."""

    def __init__(self, stages: Sequence[str] = (WHITESPACE,)) -> None:
        stages = tuple(stages)
        if stages not in PIPELINES:
            known = " or ".join(str(list(p)) for p in PIPELINES)
            raise TokenizerError(f"pre-tokenizer stages must be {known}, got {list(stages)}")
        self.stages = stages
        self.split_punct = PUNCT in stages

    @classmethod
    def from_split_punct(cls, split_punct: bool) -> PreTokenizer:
        """The pipeline with (`True`) or without (`False`) the punctuation stage."""
        if not isinstance(split_punct, bool):
            raise TokenizerError(f"split_punct must be True or False, got {split_punct!r}")
        return cls(PIPELINES[1] if split_punct else PIPELINES[0])

    def rewrite(self, text: str) -> str:
        """`text` after the stages that rewrite it (punctuation split off, joiners added): the
        text `subword-nmt` would be given."""
        return punct.split_punct(text) if self.split_punct else text

    def __call__(self, text: str) -> list[str]:
        """The words of `text`, with empty strings where separators repeat (callers map ""
        to no tokens; filtering them out first would cost more than it saves)."""
        if self.split_punct:
            return punct.split_punct(text).split(" ")
        if "\n" in text or "\r" in text:
            text = text.replace("\r", " ").replace("\n", " ")
        return text.split(" ")

    def count_words(self, lines: Iterable[str]) -> Counter[str]:
        """Word frequencies of many lines, for training."""
        return count_words(map(punct.split_punct, lines) if self.split_punct else lines)

    def undo(self, text: str) -> str:
        """Decoded text with the rewriting stages undone (joiners removed)."""
        return punct.join_punct(text) if self.split_punct else text
