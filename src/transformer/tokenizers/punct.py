"""Reversible punctuation splitting: the `punct` stage of BPE's pre-tokenizer (`pretokenize.py`).

Classic BPE works on the words between spaces, so "Büsche", "Büsche." and "Büsche," are three
different words and can be segmented three different ways: the sentence-final word of every
line carries its full stop. Moses-style tokenization splits punctuation off before BPE
(Sennrich et al. 2016 trained on tokenized text), but it cannot be undone exactly. Here every
character that is not a letter, digit or combining mark is split off its word, and the split
is marked with the joiner U+FFED (OpenNMT's convention), attached to the punctuation side:

    "Ein T-Shirt."  ->  "Ein T ￭-￭ Shirt ￭."        (words keep one form; "￭." is one token)

`join_punct` removes each joiner together with the space beside it, so
`join_punct(split_punct(text)) == text` for any text of single-spaced words that does not
itself contain the joiner. Standalone punctuation ("a - b") is left alone.
"""

from __future__ import annotations

import regex

JOINER = "\uffed"  # HALFWIDTH BLACK SQUARE, "￭"
WORD_CLASS = r"\p{L}\p{N}\p{M}"  # the characters of words (letters, numbers, marks); hf.py too
_PIECE = regex.compile(f"[{WORD_CLASS}]+|[^{WORD_CLASS}]")
_WORD_CHAR = regex.compile(f"[{WORD_CLASS}]")
_GLUE = regex.compile(f" ?{JOINER} ?")


def split_word(word: str) -> list[str]:
    """The pieces of one space-free word, joiners attached to its punctuation pieces."""
    pieces = _PIECE.findall(word)
    if len(pieces) < 2:
        return pieces
    out = list(pieces)
    for i in range(1, len(pieces)):  # one joiner between pieces i-1 and i
        if _is_punct(pieces[i]):
            out[i] = JOINER + out[i]
        else:  # pieces[i-1] is punctuation (two word runs are never adjacent)
            out[i - 1] = out[i - 1] + JOINER
    return out


def _is_punct(piece: str) -> bool:
    return _WORD_CHAR.match(piece) is None


def split_punct(text: str) -> str:
    """`text` with punctuation split off its words and marked with joiners (single-spaced)."""
    out: list[str] = []
    for word in text.replace("\r", " ").replace("\n", " ").split(" "):
        if word:
            out.extend(split_word(word))
    return " ".join(out)


def join_punct(text: str) -> str:
    """Undo `split_punct`: each joiner is removed together with one space beside it."""
    return _GLUE.sub("", text) if JOINER in text else text
