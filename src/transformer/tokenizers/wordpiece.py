"""WordPiece, BERT's tokenizer (Schuster & Nakajima 2012; Wu et al. 2016; Devlin et al. 2019).

    tok = WordPiece.train(lines, vocab_size=8000)           # lowercase + accent strip (uncased)
    tok.tokenize("Two dogs play.")  ->  ['two', 'dogs', 'play', '.']
    tok.encode("A man [MASK] a bike.", add_special_tokens=True)   # [CLS] ... [SEP]

Text is split into words as BERT does (`bert_text`: cleaning, CJK, optional lowercasing and
accent stripping, whitespace + punctuation split). Each word is then covered greedily by the
longest vocabulary entry first (Google's `WordpieceTokenizer`): a piece that continues a word
carries the prefix `##` ("playing" -> play ##ing); a word that cannot be covered completely,
or has more than `max_chars_per_word` (100) characters, becomes `[UNK]` as a whole. This is
exactly Hugging Face `tokenizers`' `BertWordPieceTokenizer` (tested on Multi30k and Tiny
Shakespeare). Words are cached, so a word is segmented once.

The specials' text ("[MASK]", ...) in the input is the special token (as in `tokenizers`) unless
`allow_special=False`. Decoding joins `##` pieces to the piece before and the words with
spaces, without `tokenizers`' optional "cleanup" of spaces before punctuation.

Ids of a trained vocabulary: 0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK], then the
characters, the `##` characters and the merged pieces (`wordpiece_learn`). A BERT `vocab.txt`
(`from_vocab_file`) keeps its own ids (bert-base: [PAD] 0, [UNK] 100, [CLS] 101, ...).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import regex

from transformer import durable
from transformer.tokenizers import bert_text
from transformer.tokenizers import files as tio
from transformer.tokenizers.wordpiece_learn import CRITERIA, learn_wordpiece

VERSION = 1  # this format's own version (tokenizers.files)
FORMAT = "transformer.tokenizers.WordPiece"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PREFIX = "##"
_CACHE_LIMIT = 1 << 20  # words; the cache is cleared when it grows past this
_SPECIAL_TEXT = regex.compile("(" + "|".join(regex.escape(s) for s in SPECIALS) + ")")


class WordPiece:
    """A WordPiece vocabulary and BERT's text rules. Build it with `train`, `load` or
    `from_vocab_file`."""

    def __init__(
        self,
        tokens: Sequence[str],
        lowercase: bool = True,
        strip_accents: bool | None = None,
        handle_cjk: bool = True,
        max_chars_per_word: int = 100,
    ) -> None:
        for name, value in (("lowercase", lowercase), ("handle_cjk", handle_cjk)):
            if not isinstance(value, bool):
                raise tio.TokenizerError(f"{name} must be True or False, got {value!r}")
        if strip_accents is not None and not isinstance(strip_accents, bool):
            raise tio.TokenizerError(f"strip_accents must be a bool or None, got {strip_accents!r}")
        _check_int("max_chars_per_word", max_chars_per_word)
        self.tokens: list[str] = tio.check_tokens(list(tokens), "WordPiece")
        self.vocab: dict[str, int] = {tok: i for i, tok in enumerate(self.tokens)}
        missing = [s for s in SPECIALS if s not in self.vocab]
        if missing:
            raise tio.TokenizerError(f"the vocabulary lacks the special tokens {missing}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.vocab[s] for s in SPECIALS
        )
        self.special_ids = frozenset(self.vocab[s] for s in SPECIALS)
        self.lowercase, self.strip_accents, self.handle_cjk = lowercase, strip_accents, handle_cjk
        self.max_chars_per_word = max_chars_per_word
        self._accents = lowercase if strip_accents is None else strip_accents
        self._words = bert_text.WORDS_CJK if handle_cjk else bert_text.WORDS
        self._max_first = max(len(t) for t in self.tokens)  # longest piece, in characters
        cont = [len(t) - len(PREFIX) for t in self.tokens if t.startswith(PREFIX)]
        self._max_cont = max(cont, default=0)  # longest continuation, without "##"
        self._cache: dict[str, list[int]] = {}
        self._surface: list[str] | None = None

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    # ----------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        lines: Iterable[str],
        vocab_size: int,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        min_frequency: int = 2,
        criterion: str = "likelihood",
        handle_cjk: bool = True,
        progress: bool = False,
    ) -> WordPiece:
        """Learn a vocabulary of `vocab_size` tokens (specials included; more if the
        characters alone exceed it, fewer if pairs run out). `criterion`: "likelihood"
        (WordPiece's rule) or "frequency" (= `tokenizers`' `WordPieceTrainer`)."""
        _check_int("vocab_size", vocab_size)
        _check_int("min_frequency", min_frequency)
        if criterion not in CRITERIA:
            raise tio.TokenizerError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        rules = cls(SPECIALS, lowercase, strip_accents, handle_cjk)  # (checks the flags)
        if isinstance(lines, str):
            lines = [lines]
        counts: Counter[str] = Counter()
        for line in lines:
            counts.update(rules.pre_tokenize(line))
        if not counts:
            raise tio.TokenizerError("empty training corpus: no words in the given lines")
        tokens = learn_wordpiece(
            counts, vocab_size, SPECIALS, min_frequency, criterion, PREFIX, progress
        )
        return cls(tokens, lowercase, strip_accents, handle_cjk)

    # ----------------------------------------------------------------------------- encoding
    def pre_tokenize(self, text: str) -> list[str]:
        """BERT's words of `text` (normalised; see `bert_text`)."""
        return self._words.findall(bert_text.normalize(text, self.lowercase, self._accents))

    def clear_cache(self) -> None:
        """Forget the cached segmentations of words."""
        self._cache.clear()

    def segment_word(self, word: str) -> list[int]:
        """The ids of one (pre-tokenised) word: greedy longest match first, or [UNK]."""
        if len(word) > self.max_chars_per_word:
            return [self.unk_id]
        vocab, out, start, n = self.vocab, [], 0, len(word)
        while start < n:
            end = min(n, start + (self._max_cont if start else self._max_first))
            while end > start:
                piece = word[start:end] if start == 0 else PREFIX + word[start:end]
                token_id = vocab.get(piece)
                if token_id is not None:
                    break
                end -= 1
            else:  # no piece covers word[start:]
                return [self.unk_id]
            out.append(token_id)
            start = end
        return out

    def _word_ids(self, word: str) -> list[int]:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        ids = self._cache[word] = self.segment_word(word)
        return ids

    def _encode_plain(self, text: str) -> list[int]:
        words = self.pre_tokenize(text)
        parts = list(map(self._cache.get, words))
        if None in parts:
            cache, new = self._cache, self._word_ids
            parts = [cache.get(w) or new(w) for w in words]
        return list(itertools.chain.from_iterable(parts))

    def encode(
        self, text: str, add_special_tokens: bool = False, allow_special: bool = True
    ) -> list[int]:
        """Token ids of `text`; with `add_special_tokens`, [CLS] ids [SEP] (BERT's input)."""
        if allow_special and "[" in text:
            ids = []
            for i, part in enumerate(_SPECIAL_TEXT.split(text)):
                ids += [self.vocab[part]] if i % 2 else self._encode_plain(part)
        else:
            ids = self._encode_plain(text)
        return [self.cls_id, *ids, self.sep_id] if add_special_tokens else ids

    def encode_pair(
        self, first: str, second: str, allow_special: bool = True
    ) -> tuple[list[int], list[int]]:
        """BERT's sentence pair: ([CLS] a [SEP] b [SEP], segment ids 0 ... 0 1 ... 1)."""
        a = self.encode(first, True, allow_special)
        b = [*self.encode(second, False, allow_special), self.sep_id]
        return a + b, [0] * len(a) + [1] * len(b)

    def tokenize(self, text: str, allow_special: bool = True) -> list[str]:
        """The token strings of `text` ("##" marks a piece that continues a word)."""
        return [self.tokens[i] for i in self.encode(text, allow_special=allow_special)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of `ids`: pieces joined, "##" pieces glued to the one before; [PAD], [CLS]
        and [SEP] are dropped unless `skip_special=False` ([UNK], [MASK] stay)."""
        tokens = tio.lookup_ids(self.tokens, ids)
        if skip_special:
            drop = {"[PAD]", "[CLS]", "[SEP]"}
            tokens = [t for t in tokens if t not in drop]
        return " ".join(tokens).replace(" " + PREFIX, "")

    # ----------------------------------------------------------------------------- files
    def _settings(self) -> dict[str, Any]:
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "handle_cjk": self.handle_cjk,
            "max_chars_per_word": self.max_chars_per_word,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as versioned JSON."""
        payload = {"format": FORMAT, "version": VERSION, **self._settings()}
        tio.write_json(path, {**payload, "vocab": self.tokens})

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordPiece:
        """Read a file written by `save`, checking every field."""
        payload = tio.read_tokenizer_json(path, FORMAT, (VERSION,))
        tokens = tio.check_tokens(tio.get_field(payload, "vocab", list, path), path)
        lower = tio.get_field(payload, "lowercase", bool, path)
        cjk = tio.get_field(payload, "handle_cjk", bool, path)
        max_chars = tio.get_field(payload, "max_chars_per_word", int, path)
        accents = payload.get("strip_accents")
        if accents is not None and not isinstance(accents, bool):
            raise tio.TokenizerError(f"{path}: field 'strip_accents' should be a bool or null")
        try:
            return cls(tokens, lower, accents, cjk, max_chars)
        except tio.TokenizerError as err:
            raise tio.TokenizerError(f"{path}: {err}") from err

    def write_vocab(self, path: str | os.PathLike) -> None:
        """Write BERT's `vocab.txt`: one token per line, line number = id."""
        if any("\n" in t or "\r" in t for t in self.tokens):
            raise tio.TokenizerError("a token contains a line break: no vocab.txt possible")
        durable.write_text(path, "".join(t + "\n" for t in self.tokens))

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike, lowercase: bool = True, **kw) -> WordPiece:
        """Read a BERT `vocab.txt` (e.g. bert-base-uncased's); the text rules are given."""
        try:
            with open(path, encoding="utf-8") as f:
                tokens = [line.rstrip() for line in f]  # (as tokenizers: trailing space off)
        except (OSError, UnicodeDecodeError) as err:
            raise tio.TokenizerError(f"{path}: cannot read vocab.txt ({err})") from err
        while tokens and not tokens[-1]:
            tokens.pop()
        try:
            return cls(tokens, lowercase, **kw)
        except tio.TokenizerError as err:
            raise tio.TokenizerError(f"{path}: {err}") from err

    def to_hf_json(self, path: str | os.PathLike) -> None:
        """Write a `tokenizer.json` that `tokenizers.Tokenizer.from_file` loads and that
        encodes like `encode` (its [CLS]/[SEP] post-processor like `add_special_tokens`)."""
        tio.write_json(path, hf_wordpiece(self))


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise tio.TokenizerError(f"{name} must be an integer >= 1, got {value!r}")


def hf_wordpiece(tok: WordPiece) -> dict[str, Any]:
    """`tokenizer.json` content: BertNormalizer, BertPreTokenizer, WordPiece model."""
    added = [
        {"id": tok.vocab[s], "content": s, "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}
        for s in sorted(SPECIALS, key=tok.vocab.__getitem__)
    ]  # fmt: skip
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": tok.handle_cjk,
            "strip_accents": tok.strip_accents,
            "lowercase": tok.lowercase,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "BertProcessing",
            "sep": ["[SEP]", tok.sep_id],
            "cls": ["[CLS]", tok.cls_id],
        },
        "decoder": {"type": "WordPiece", "prefix": PREFIX, "cleanup": False},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": PREFIX,
            "max_input_chars_per_word": tok.max_chars_per_word,
            "vocab": dict(tok.vocab),
        },
    }
