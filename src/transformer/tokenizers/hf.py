"""Export to Hugging Face `tokenizer.json` (the `tokenizers` library's serialization format).

Only writes plain JSON; the `tokenizers` package is never imported here. The written files
load with `tokenizers.Tokenizer.from_file(path)` and encode like our tokenizers do, with one
policy difference: `tokenizers` always recognises special-token text (e.g. "<s>") in the
input, whereas our `encode` treats it as ordinary text unless told otherwise.

Classic BPE's pre-tokenizer stages (`pretokenize.py`) map one by one:
- `whitespace`: a `Split` pre-tokenizer on runs of space, '\\r', '\\n';
- `punct`: a normalizer that inserts the joiners and the spaces around them (two `Replace`s
  of zero-width regex matches: " ￭" before a punctuation character inside a word, "￭ " after
  one that a word character follows: exactly `punct.split_word`'s rule), and a decoder that
  fuses the tokens and removes each joiner with a space beside it (`punct.join_punct`).
  The regexes run in Oniguruma rather than Python's `regex`; both use Unicode's general
  categories, so they agree except where their Unicode versions differ. Measured with
  `tokenizers` 0.23.3 and `regex` 2026.11.19: they agree on every character assigned in
  Python 3.11's Unicode 14 database; they differ on 17,559 code points unassigned there, which
  `regex` (a newer Unicode) counts as letters, numbers or marks and Oniguruma as punctuation.
Decoding differs in one policy too: `tokenizers` drops `<unk>` (a special token to it), ours
writes it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformer.tokenizers import pretokenize
from transformer.tokenizers.files import TokenizerError
from transformer.tokenizers.punct import JOINER, WORD_CLASS
from transformer.tokenizers.specials import SPECIALS, UNK

_BREAK = " \r\n"  # the whitespace stage's separators
_INSIDE_WORD = f"(?<=[^{_BREAK}])"  # after a character of the same word
_PUNCT = f"[^{WORD_CLASS}{_BREAK}]"  # a punctuation character (inside a word)


def _added(token_id: int, content: str) -> dict[str, Any]:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def _bpe_model(
    vocab: dict[str, int], merges: Sequence[tuple[str, str]], unk: str | None, suffix: str | None
) -> dict[str, Any]:
    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": unk,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": suffix,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": vocab,
        "merges": [[a, b] for a, b in merges],
    }


def _replace(pattern: str, content: str) -> dict[str, Any]:
    return {"type": "Replace", "pattern": {"Regex": pattern}, "content": content}


def _punct_normalizer() -> dict[str, Any]:
    """`punct.split_punct`'s joiners, inserted at zero-width matches (then split on spaces)."""
    before = _replace(f"{_INSIDE_WORD}(?={_PUNCT})", " " + JOINER)
    after = _replace(f"(?<={_PUNCT})(?=[{WORD_CLASS}])", JOINER + " ")
    return {"type": "Sequence", "normalizers": [before, after]}


def _bpe_decoder(end_of_word: str | None, split_punct: bool) -> dict[str, Any]:
    model = {"type": "BPEDecoder", "suffix": end_of_word} if end_of_word else {"type": "Fuse"}
    if not split_punct:
        return model
    steps = [model, {"type": "Fuse"}, _replace(f" ?{JOINER} ?", "")]
    return {"type": "Sequence", "decoders": steps if end_of_word else steps[1:]}


def bpe_to_hf(
    vocab: Mapping[str, int],
    merges: Sequence[tuple[str, str]],
    end_of_word: str | None,
    stages: Sequence[str],
) -> dict[str, Any]:
    """`tokenizer.json` content for a classic `BPE` (its vocabulary starts with the specials)."""
    if tuple(stages) not in pretokenize.PIPELINES:
        raise TokenizerError(f"no Hugging Face export for pre-tokenizer stages {list(stages)}")
    split_punct = pretokenize.PUNCT in stages
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added(i, tok) for i, tok in enumerate(SPECIALS)],
        "normalizer": _punct_normalizer() if split_punct else None,
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": f"[{_BREAK}]+"},
            "behavior": "Removed",
            "invert": False,
        },
        "post_processor": None,
        "decoder": _bpe_decoder(end_of_word, split_punct),
        "model": _bpe_model(dict(vocab), merges, UNK, end_of_word),
    }


def bytebpe_to_hf(
    tokens: Sequence[str], merges: Sequence[tuple[str, str]], special_tokens: Mapping[str, int]
) -> dict[str, Any]:
    """`tokenizer.json` content for a GPT-2 style `ByteBPE` (ByteLevel pre-tokenizer)."""
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    vocab = {token: i for i, token in enumerate(tokens)}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added(i, text) for text, i in sorted(special_tokens.items())],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", **byte_level, "trim_offsets": False},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": _bpe_model(vocab, merges, None, None),
    }
