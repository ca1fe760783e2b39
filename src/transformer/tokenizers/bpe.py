"""Classic byte-pair encoding over characters (Sennrich, Haddow & Birch 2016), as in the lecture.

Words are the pieces of the text between spaces and line breaks (`subword-nmt`'s convention:
tabs and other whitespace are ordinary characters). A word starts as its characters, the last
one carrying the end-of-word marker `</w>` ("est</w>" ends a word, "est" does not), so decoding
knows where words end. Training learns the merges of `subword-nmt learn-bpe` (same `</w>`
convention, same tie rule; checked on Multi30k, 8,000 merges); encoding applies them in rank
order, like `subword-nmt apply-bpe`, with a per-word cache. (subword-nmt merges with a regex
over space-joined symbols, which can also fire inside a symbol that contains a non-space
whitespace character such as U+00A0 or a tab; ours merges symbols exactly, so on such rare
words the two can part ways.) The four special strings are reserved: text that spells them
is encoded as ordinary characters, except in the unlikely case that a learned merge produces
exactly one of those strings.

With `split_punct=True` the text is first passed through `punct.split_punct` (punctuation split
off its words, marked with a joiner, so that "Büsche." is "Büsche" plus "￭.") for training,
`tokenize`, `encode` and `segment`, and `decode` undoes it (`punct.join_punct`).

Ids: 0 `<pad>`, 1 `<s>`, 2 `</s>`, 3 `<unk>`, then the base symbols (sorted), then one token
per merge (in merge order). Every character seen in training is a base symbol in both forms
("e" and "e</w>"); characters never seen in training become `<unk>`.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterable, Sequence

from transformer.tokenizers import io as tio
from transformer.tokenizers import punct
from transformer.tokenizers.learn import learn_word_merges

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
_CACHE_LIMIT = 1 << 20  # words; the per-word caches are cleared when they grow past this
_NO_RANK = 1 << 62  # the rank of a pair that is not a merge


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


class BPE:
    """A trained classic BPE tokenizer. Build it with `BPE.train(...)` or `BPE.load(path)`."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(
        self,
        merges: Sequence[tuple[str, str]],
        base_symbols: Iterable[str],
        end_of_word: str | None = "</w>",
        split_punct: bool = False,
    ) -> None:
        if end_of_word == "":
            raise tio.TokenizerError("end_of_word must be a non-empty string or None")
        if not isinstance(split_punct, bool):
            raise tio.TokenizerError(f"split_punct must be True or False, got {split_punct!r}")
        self.end_of_word = end_of_word
        self.split_punct = split_punct
        self.merges: list[tuple[str, str]] = [(a, b) for a, b in merges]
        tokens = list(SPECIALS)
        for sym in sorted(set(base_symbols) - set(SPECIALS)):
            tokens.append(sym)
        known = set(tokens)
        for a, b in self.merges:
            if a + b not in known:
                known.add(a + b)
                tokens.append(a + b)
        self.tokens: list[str] = tokens  # id -> token
        self.vocab: dict[str, int] = {tok: i for i, tok in enumerate(tokens)}  # token -> id
        self.ranks: dict[tuple[str, str], int] = {}
        for i, pair in enumerate(self.merges):
            self.ranks.setdefault(pair, i)  # a repeated merge keeps its first rank
        self._pieces: dict[str, tuple[str, ...]] = {}  # word -> its tokens
        self._ids: dict[str, list[int]] = {}  # word -> its token ids
        self._surface: list[str] | None = None  # id -> text, for decode

    # ----------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        lines: Iterable[str],
        num_merges: int,
        end_of_word: str | None = "</w>",
        min_frequency: int = 2,
        progress: bool = False,
        split_punct: bool = False,
    ) -> BPE:
        """Learn `num_merges` merges from an iterable of text lines (fewer if pairs run out).

        Incremental pair statistics with a lazy max-heap (see `learn.py`); the result equals
        `subword-nmt learn-bpe -s num_merges` on the same lines (with `split_punct`, on the
        lines after `punct.split_punct`).
        """
        if isinstance(num_merges, bool) or not isinstance(num_merges, int) or num_merges <= 0:
            raise tio.TokenizerError(f"num_merges must be a positive integer, got {num_merges!r}")
        if (
            isinstance(min_frequency, bool)
            or not isinstance(min_frequency, int)
            or (min_frequency < 1)
        ):
            raise tio.TokenizerError(
                f"min_frequency must be an integer >= 1, got {min_frequency!r}"
            )
        if isinstance(lines, str):
            lines = [lines]
        if not isinstance(split_punct, bool):  # (checked before the learning, not after)
            raise tio.TokenizerError(f"split_punct must be True or False, got {split_punct!r}")
        if split_punct:
            lines = map(punct.split_punct, lines)
        counts = count_words(lines)
        if not counts:
            raise tio.TokenizerError("empty training corpus: no words in the given lines")
        chars = set().union(*counts)
        base = chars if end_of_word is None else chars | {ch + end_of_word for ch in chars}
        merges = learn_word_merges(counts, end_of_word, num_merges, min_frequency, progress)
        return cls(merges, base, end_of_word, split_punct)

    @staticmethod
    def _initial(word: str, end_of_word: str | None) -> tuple[str, ...]:
        """A word's characters; the last carries the end-of-word marker (if any)."""
        if end_of_word is None:
            return tuple(word)
        return (*word[:-1], word[-1] + end_of_word)

    # ----------------------------------------------------------------------------- encoding
    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def clear_cache(self) -> None:
        """Forget the cached segmentations of words (they are rebuilt on demand)."""
        self._pieces.clear()
        self._ids.clear()

    def segment_word(self, word: str) -> tuple[str, ...]:
        """The tokens of one word: repeatedly the lowest-ranked adjacent pair is merged, at all
        its non-overlapping occurrences from left to right (`subword-nmt apply-bpe`'s rule).

        Each adjacent pair's rank is kept in a list; after a merge only the ranks of the two
        pairs next to it are looked up again.
        """
        cached = self._pieces.get(word)
        if cached is not None or not word:
            return cached or ()
        symbols = list(word)
        if self.end_of_word is not None:
            symbols[-1] += self.end_of_word
        get, none = self.ranks.get, _NO_RANK
        codes = list(map(get, itertools.pairwise(symbols), itertools.repeat(none)))
        while codes:
            best = min(codes)
            if best == none:
                break
            i = codes.index(best)
            while True:  # every occurrence of the best pair, left to right
                merged = symbols[i] = symbols[i] + symbols[i + 1]
                del symbols[i + 1], codes[i]
                if i > 0:
                    codes[i - 1] = get((symbols[i - 1], merged), none)
                if i < len(codes):
                    codes[i] = get((merged, symbols[i + 1]), none)
                if best not in codes:  # (earlier occurrences are merged already)
                    break
                i = codes.index(best, i + 1)
        out = tuple(symbols)
        if len(self._pieces) >= _CACHE_LIMIT:
            self._pieces.clear()
        self._pieces[word] = out
        return out

    def tokenize(self, text: str) -> list[str]:
        """The token strings of `text` (word-final ones end with the end-of-word marker)."""
        out: list[str] = []
        if self.split_punct:
            text = punct.split_punct(text)
        for word in split_words(text):
            out.extend(self.segment_word(word))
        return out

    def _word_ids(self, word: str) -> list[int]:
        vocab, unk = self.vocab, self.unk_id
        ids = [vocab.get(tok, unk) for tok in self.segment_word(word)] if word else []
        if len(self._ids) >= _CACHE_LIMIT:
            self._ids.clear()
        self._ids[word] = ids
        return ids

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of `text`; unknown characters become `unk_id`."""
        if self.split_punct:
            text = punct.split_punct(text)
        if "\n" in text or "\r" in text:
            text = text.replace("\r", " ").replace("\n", " ")
        words = text.split(" ")
        parts = list(map(self._ids.get, words))  # the cache maps "" to []
        if None in parts:  # words seen for the first time: segment each distinct one once
            for word in set(words).difference(self._ids):
                self._word_ids(word)
            parts = list(map(self._ids.get, words))
            if None in parts:  # the cache overflowed and was cleared meanwhile
                parts = [self._ids.get(w) or self._word_ids(w) for w in words]
        if add_bos:
            parts.insert(0, (self.bos_id,))
        if add_eos:
            parts.append((self.eos_id,))
        return list(itertools.chain.from_iterable(parts))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`: word-final tokens end a word; `<pad>`, `<s>`, `</s>` are dropped.

        Without an end-of-word marker (`end_of_word=None`) word boundaries are unknown and
        the tokens are simply concatenated.
        """
        surface = self._surface or self._build_surface()
        text = "".join(tio.lookup_ids(surface, ids))
        text = text[:-1] if text.endswith(" ") else text
        return punct.join_punct(text) if self.split_punct else text

    def _build_surface(self) -> list[str]:
        eow = self.end_of_word
        surface = []
        for tok in self.tokens:
            if eow is not None and tok.endswith(eow) and tok != eow:
                tok = tok[: -len(eow)] + " "
            surface.append(tok)
        surface[self.pad_id] = surface[self.bos_id] = surface[self.eos_id] = ""
        self._surface = surface
        return surface

    def segment(self, line: str, separator: str = "@@") -> str:
        """One line in `subword-nmt apply-bpe` form: "sub@@ word" (its output, byte for byte)."""
        out = []
        eow = self.end_of_word or ""
        if self.split_punct:
            line = punct.split_punct(line)
        for word in line.strip("\r\n ").split(" "):
            if not word:
                continue
            pieces = list(self.segment_word(word))
            if eow and pieces[-1].endswith(eow):
                pieces[-1] = pieces[-1][: -len(eow)]
            out.extend(p + separator for p in pieces[:-1])
            out.append(pieces[-1])
        lead = len(line) - len(line.lstrip("\r\n "))
        trail = len(line) - len(line.rstrip("\r\n "))
        text = line[:lead] + " ".join(out)
        if trail and trail != len(line):
            text += line[-trail:]
        return text

    # ----------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as versioned JSON."""
        tio.write_json(
            path,
            {
                "format": tio.BPE_FORMAT,
                "version": tio.VERSION,
                "end_of_word": self.end_of_word,
                "split_punct": self.split_punct,
                "vocab": self.tokens,
                "merges": [list(p) for p in self.merges],
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPE:
        """Read a file written by `save`, checking every field."""
        payload = tio.read_tokenizer_json(path, tio.BPE_FORMAT)
        eow = payload.get("end_of_word")
        if eow is not None and (not isinstance(eow, str) or not eow):
            raise tio.TokenizerError(f"{path}: field 'end_of_word' should be a string or null")
        split = payload.get("split_punct", False)  # (absent from files of earlier versions)
        if not isinstance(split, bool):
            raise tio.TokenizerError(f"{path}: field 'split_punct' should be true or false")
        tokens = tio.check_tokens(tio.get_field(payload, "vocab", list, path), path)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise tio.TokenizerError(f"{path}: field 'vocab' must start with {list(SPECIALS)}")
        vocab = {tok: i for i, tok in enumerate(tokens)}
        merges = tio.check_merges(tio.get_field(payload, "merges", list, path), vocab, path)
        merged = {a + b for a, b in merges}
        base = [t for t in tokens[len(SPECIALS) :] if t not in merged]
        bpe = cls(merges, base, eow, split)
        if bpe.tokens != tokens:
            raise tio.TokenizerError(f"{path}: field 'vocab' is not in the order BPE assigns ids")
        return bpe

    def write_codes(self, path: str | os.PathLike) -> None:
        """Write the merges as a `subword-nmt` codes file (version 0.2); with `split_punct`
        they apply to text after `punct.split_punct`."""
        if self.end_of_word not in (None, "</w>"):
            raise tio.TokenizerError("subword-nmt codes need end_of_word='</w>'")
        with open(path, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.writelines(f"{a} {b}\n" for a, b in self.merges)

    def to_hf_json(self, path: str | os.PathLike) -> None:
        """Write a Hugging Face `tokenizer.json` that `tokenizers` loads and encodes the same."""
        from transformer.tokenizers.hf import bpe_to_hf

        if self.split_punct:
            raise tio.TokenizerError("split_punct has no Hugging Face equivalent to export")

        tio.write_json(path, bpe_to_hf(self))
