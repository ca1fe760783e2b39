"""BERT's text normalisation and pre-tokenisation (Devlin et al. 2019, `BasicTokenizer`), as
Hugging Face `tokenizers`' `BertNormalizer` + `BertPreTokenizer` do it:

1. clean: remove NUL, U+FFFD and every character of Unicode category Cc (other than
   tab/newline/carriage return), Cf or Co; every White_Space character becomes a word break;
2. CJK ideographs (the ranges of BERT's `_is_chinese_char`) become words of their own;
3. accents stripped (NFD, then the non-spacing marks Mn removed), by default when lowercasing;
4. lowercase, character by character (so a final "Σ" lowercases to "σ", as in Rust, not
   to Python's context-dependent "ς");
5. words are the maximal runs between White_Space characters, and every punctuation
   character (Unicode P* or ASCII punctuation, which includes `$+<=>^`|~`) is a word of
   its own.

Pure Python on C-level string methods and one `regex` pattern; no torch. Character classes
come from Python's Unicode database (`unicodedata.unidata_version`, 14.0 in Python 3.11),
newer than some of `tokenizers`' tables and older than others: code points assigned only in
between (rare in any corpus: none in Multi30k or Tiny Shakespeare) can be classed apart.
"""

from __future__ import annotations

import string
import unicodedata

import regex

_ASCII_PUNCT = regex.escape(string.punctuation)
_CJK = (
    "\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\U0002a700-\U0002b73f"
    "\U0002b740-\U0002b81f\U0002b920-\U0002ceaf\uf900-\ufaff\U0002f800-\U0002fa1f"
)
_SPLIT = f"\\p{{P}}{_ASCII_PUNCT}"
# One word: a punctuation char, a CJK char, or a run of anything but those and White_Space.
WORDS_CJK = regex.compile(f"[{_SPLIT}{_CJK}]|[^{_SPLIT}{_CJK}\\p{{White_Space}}]+")
WORDS = regex.compile(f"[{_SPLIT}]|[^{_SPLIT}\\p{{White_Space}}]+")
# Removed by the cleaning step: NUL, U+FFFD, categories Cc (but \t \n \r), Cf and Co
# (unassigned code points, Cn, stay: so does tokenizers).
_CONTROL = regex.compile("[\\x00\\ufffd]|[^\\P{Cc}\\t\\n\\r]|[\\p{Cf}\\p{Co}]")
_MARKS = regex.compile("\\p{Mn}")


def clean(text: str) -> str:
    """Step 1 without the whitespace mapping (the word split treats White_Space as a break)."""
    if text.isprintable() and "\ufffd" not in text:  # (fast path: no C* character at all)
        return text
    return _CONTROL.sub("", text)


def strip_accents(text: str) -> str:
    """NFD, then the non-spacing marks removed ("Müller" -> "Muller")."""
    if text.isascii():
        return text
    return _MARKS.sub("", unicodedata.normalize("NFD", text))


def lowercase(text: str) -> str:
    """Per-character lowercase (Rust `char::to_lowercase`): no final-sigma rule."""
    if "Σ" not in text:
        return text.lower()
    return "".join(ch.lower() for ch in text)


def normalize(text: str, lower: bool, accents: bool) -> str:
    """Steps 1, 3 and 4 (`accents`: strip them). Step 2 happens in the word split."""
    text = clean(text)
    if accents:
        text = strip_accents(text)
    return lowercase(text) if lower else text


def pre_tokenize(text: str, lower: bool = True, accents: bool | None = None, cjk=True) -> list:
    """The words of `text` after steps 1-5 (`accents=None`: strip them when `lower`)."""
    text = normalize(text, lower, lower if accents is None else accents)
    return (WORDS_CJK if cjk else WORDS).findall(text)
