"""A character vocabulary, as nanoGPT's Tiny Shakespeare model uses: every distinct character
of the text is one token, ids in sorted order (nanoGPT's `prepare.py`: `sorted(set(data))`,
65 characters for Tiny Shakespeare), no special tokens.

    tok = CharTokenizer.train([text])
    tok.encode("ROMEO:")   # one id per character; an unknown character raises TokenizerError
    tok.save("tokenizer.json"); CharTokenizer.load("tokenizer.json")

Saved as versioned JSON like the other tokenizers (`format`, `version`, `vocab`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from transformer.tokenizers import files as tio

VERSION = 1  # this format's own version (tokenizers.files)
CHAR_FORMAT = "transformer.tokenizers.Char"


class CharTokenizer:
    """id i <-> the i-th character of `chars` (each a single code point, all distinct)."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars: list[str] = list(chars)
        if not self.chars:
            raise tio.TokenizerError("a character vocabulary needs at least one character")
        for i, c in enumerate(self.chars):
            if not isinstance(c, str) or len(c) != 1:
                raise tio.TokenizerError(f"vocabulary entry {i} is not one character: {c!r}")
        self.ids = {c: i for i, c in enumerate(self.chars)}
        if len(self.ids) != len(self.chars):
            raise tio.TokenizerError("the character vocabulary repeats a character")

    @classmethod
    def train(cls, texts: Iterable[str] | str) -> CharTokenizer:
        """The sorted set of every character in `texts`."""
        if isinstance(texts, str):
            texts = [texts]
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise tio.TokenizerError("empty training text: no characters")
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def tokens(self) -> list[str]:
        """id -> token (the character), as `BPE.tokens` / `ByteBPE.tokens`."""
        return self.chars

    def encode(self, text: str) -> list[int]:
        """One id per character; a character outside the vocabulary raises `TokenizerError`
        naming it and its position."""
        ids = self.ids
        try:
            return [ids[c] for c in text]
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in ids)
            raise tio.TokenizerError(
                f"character {text[pos]!r} (U+{ord(text[pos]):04X}) at position {pos} is not in "
                f"the {len(ids)}-character vocabulary"
            ) from None

    def tokenize(self, text: str) -> list[str]:
        """The characters of `text` (each checked to be in the vocabulary)."""
        self.encode(text)
        return list(text)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(tio.lookup_ids(self.chars, ids))

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as versioned JSON."""
        tio.write_json(path, {"format": CHAR_FORMAT, "version": VERSION, "vocab": list(self.chars)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Read a file written by `save`, checking every field."""
        payload = tio.read_tokenizer_json(path, CHAR_FORMAT, (VERSION,))
        chars = tio.check_tokens(tio.get_field(payload, "vocab", list, path), path)
        try:
            return cls(chars)
        except tio.TokenizerError as err:
            raise tio.TokenizerError(f"{path}: {err}") from None
