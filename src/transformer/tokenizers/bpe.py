"""Classic byte-pair encoding over characters (Sennrich, Haddow & Birch 2016), as in the lecture.

Words are the pieces of the text between spaces and line breaks (`subword-nmt`'s convention:
tabs and other whitespace are ordinary characters). A word starts as its characters, the last
one carrying the end-of-word marker `</w>` ("est</w>" ends a word, "est" does not), so decoding
knows where words end. Training learns the merges of `subword-nmt learn-bpe` (same `</w>`
convention, same tie rule; checked on Multi30k, 8,000 merges); encoding applies them in rank
order, like `subword-nmt apply-bpe` (the merge loop and the per-word cache are `merging.py`'s,
shared with `ByteBPE`). (subword-nmt merges with a regex over space-joined symbols, which can
also fire inside a symbol that contains a non-space whitespace character such as U+00A0 or a
tab; ours merges symbols exactly, so on such rare words the two can part ways.) The four
special strings are reserved: text that spells them is encoded as ordinary characters, except
in the unlikely case that a learned merge produces exactly one of those strings.

The pipeline: text -> pre-tokenizer (`pretokenize.PreTokenizer`: the whitespace split, then
with `split_punct=True` the `punct` stage, which splits punctuation off its words and marks it
with a joiner, so that "Büsche." is "Büsche" plus "￭.") -> words -> merges -> ids; `decode`
undoes the pre-tokenizer (`punct.join_punct`). Training, `tokenize`, `encode` and `segment` all
see the pre-tokenized text.

Ids (`specials.py`): 0 `<pad>`, 1 `<s>`, 2 `</s>`, 3 `<unk>`, then the base symbols (sorted),
then one token per merge (in merge order). Every character seen in training is a base symbol in
both forms ("e" and "e</w>"); characters never seen in training become `<unk>`.

Files: version 2 names the pre-tokenizer stages (`"pre_tokenizer": ["whitespace", "punct"]`);
version 1 files (an optional `"split_punct": true`) still load.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from transformer import durable
from transformer.tokenizers import files
from transformer.tokenizers.files import BPE_FORMAT, TokenizerError
from transformer.tokenizers.hf import bpe_to_hf
from transformer.tokenizers.learn import learn_word_merges
from transformer.tokenizers.merging import PieceCache, apply_merges, merge_table
from transformer.tokenizers.pretokenize import PreTokenizer
from transformer.tokenizers.specials import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID

VERSION = 2  # of the file format; 2: "pre_tokenizer" (the stages) replaced "split_punct"
READS = (1, 2)  # the file versions `load` reads


class BPE:
    """A trained classic BPE tokenizer. Build it with `BPE.train(...)` or `BPE.load(path)`."""

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def __init__(
        self,
        merges: Sequence[tuple[str, str]],
        base_symbols: Iterable[str],
        end_of_word: str | None = "</w>",
        split_punct: bool = False,
    ) -> None:
        """`merges` in rank order; their parts must be base symbols or results of earlier
        merges. `split_punct` adds the `punct` stage to the pre-tokenizer."""
        if end_of_word == "":
            raise TokenizerError("end_of_word must be a non-empty string or None")
        self.pre_tokenizer = PreTokenizer.from_split_punct(split_punct)
        self.end_of_word = end_of_word
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
        self._table = merge_table(self.vocab, self.merges, "BPE")
        self._ids: PieceCache[int] = PieceCache(self._word_ids)  # word -> its token ids
        self._pieces: PieceCache[str] = PieceCache(self._word_tokens)  # word -> its tokens
        self._surface: list[str] | None = None  # id -> text, for decode

    @property
    def split_punct(self) -> bool:
        """Whether the pre-tokenizer splits punctuation off words (the `punct` stage)."""
        return self.pre_tokenizer.split_punct

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
            raise TokenizerError(f"num_merges must be a positive integer, got {num_merges!r}")
        if (
            isinstance(min_frequency, bool)
            or not isinstance(min_frequency, int)
            or (min_frequency < 1)
        ):
            raise TokenizerError(f"min_frequency must be an integer >= 1, got {min_frequency!r}")
        if isinstance(lines, str):
            lines = [lines]
        pre = PreTokenizer.from_split_punct(split_punct)  # (checked before the learning)
        counts = pre.count_words(lines)
        if not counts:
            raise TokenizerError("empty training corpus: no words in the given lines")
        chars = set().union(*counts)
        base = chars if end_of_word is None else chars | {ch + end_of_word for ch in chars}
        merges = learn_word_merges(counts, end_of_word, num_merges, min_frequency, progress)
        return cls(merges, base, end_of_word, split_punct)

    # ----------------------------------------------------------------------------- encoding
    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def clear_cache(self) -> None:
        """Forget the cached segmentations of words (they are rebuilt on demand)."""
        self._pieces.clear()
        self._ids.clear()

    def _merged(self, word: str) -> tuple[list[str], list[int]]:
        """A non-empty word's initial symbols (its characters, the last one carrying the
        end-of-word marker) and its token ids after the merges; a symbol that is not in the
        vocabulary has the placeholder id `~position` (negative) and is never merged."""
        symbols = list(word)
        if self.end_of_word is not None:
            symbols[-1] += self.end_of_word
        ids = list(map(self.vocab.get, symbols))
        if None in ids:
            ids = [~k if i is None else i for k, i in enumerate(ids)]
        return symbols, apply_merges(ids, self._table.get, every_occurrence=True)

    def _word_ids(self, word: str) -> list[int]:
        if not word:
            return []
        ids = self._merged(word)[1]
        return ids if min(ids) >= 0 else [i if i >= 0 else UNK_ID for i in ids]

    def _word_tokens(self, word: str) -> tuple[str, ...]:
        if not word:
            return ()
        symbols, ids = self._merged(word)
        tokens = self.tokens
        return tuple([tokens[i] if i >= 0 else symbols[~i] for i in ids])

    def segment_word(self, word: str) -> tuple[str, ...]:
        """The tokens of one word: repeatedly the lowest-ranked adjacent pair is merged, at all
        its non-overlapping occurrences from left to right (`subword-nmt apply-bpe`'s rule)."""
        return tuple(self._pieces.get(word))

    def tokenize(self, text: str) -> list[str]:
        """The token strings of `text` (word-final ones end with the end-of-word marker)."""
        return self._pieces.join(self.pre_tokenizer(text))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of `text`; unknown characters become `unk_id`."""
        ids = self._ids.join(self.pre_tokenizer(text))
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`: word-final tokens end a word; `<pad>`, `<s>`, `</s>` are dropped.

        Without an end-of-word marker (`end_of_word=None`) word boundaries are unknown and
        the tokens are simply concatenated.
        """
        surface = self._surface or self._build_surface()
        text = "".join(files.lookup_ids(surface, ids))
        text = text[:-1] if text.endswith(" ") else text
        return self.pre_tokenizer.undo(text)

    def _build_surface(self) -> list[str]:
        eow = self.end_of_word
        surface = []
        for tok in self.tokens:
            if eow is not None and tok.endswith(eow) and tok != eow:
                tok = tok[: -len(eow)] + " "
            surface.append(tok)
        surface[PAD_ID] = surface[BOS_ID] = surface[EOS_ID] = ""
        self._surface = surface
        return surface

    def segment(self, line: str, separator: str = "@@") -> str:
        """One line in `subword-nmt apply-bpe` form: "sub@@ word" (its output, byte for byte)."""
        out = []
        eow = self.end_of_word or ""
        line = self.pre_tokenizer.rewrite(line)
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
        """Write the tokenizer as versioned JSON (format version 2)."""
        files.write_json(
            path,
            {
                "format": BPE_FORMAT,
                "version": VERSION,
                "end_of_word": self.end_of_word,
                "pre_tokenizer": list(self.pre_tokenizer.stages),
                "vocab": self.tokens,
                "merges": [list(p) for p in self.merges],
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPE:
        """Read a file written by `save` (version 2, or version 1 of earlier code), checking
        every field."""
        payload = files.read_tokenizer_json(path, BPE_FORMAT, READS)
        eow = payload.get("end_of_word")
        if eow is not None and (not isinstance(eow, str) or not eow):
            raise TokenizerError(f"{path}: field 'end_of_word' should be a string or null")
        split = _read_split_punct(payload, path)
        tokens = files.check_tokens(files.get_field(payload, "vocab", list, path), path)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise TokenizerError(f"{path}: field 'vocab' must start with {list(SPECIALS)}")
        vocab = {tok: i for i, tok in enumerate(tokens)}
        merges = files.check_merges(files.get_field(payload, "merges", list, path), vocab, path)
        merged = {a + b for a, b in merges}
        base = [t for t in tokens[len(SPECIALS) :] if t not in merged]
        bpe = cls(merges, base, eow, split)
        if bpe.tokens != tokens:
            raise TokenizerError(f"{path}: field 'vocab' is not in the order BPE assigns ids")
        return bpe

    def write_codes(self, path: str | os.PathLike) -> None:
        """Write the merges as a `subword-nmt` codes file (version 0.2); with `split_punct`
        they apply to text after `punct.split_punct`."""
        if self.end_of_word not in (None, "</w>"):
            raise TokenizerError("subword-nmt codes need end_of_word='</w>'")
        codes = "".join(f"{a} {b}\n" for a, b in self.merges)
        durable.write_text(path, "#version: 0.2\n" + codes)

    def to_hf_json(self, path: str | os.PathLike) -> None:
        """Write a Hugging Face `tokenizer.json` that `tokenizers` loads and encodes the same
        (pre-tokenizer stages included, see `hf.py`)."""
        stages = self.pre_tokenizer.stages
        files.write_json(path, bpe_to_hf(self.vocab, self.merges, self.end_of_word, stages))


def _read_split_punct(payload: dict, path: str | os.PathLike) -> bool:
    """Whether a file's pre-tokenizer has the `punct` stage: version 2's `pre_tokenizer` list,
    or version 1's optional `split_punct` (absent from files written before it existed)."""
    if payload["version"] == 1:
        split = payload.get("split_punct", False)
        if not isinstance(split, bool):
            raise TokenizerError(f"{path}: field 'split_punct' should be true or false")
        return split
    stages = files.get_field(payload, "pre_tokenizer", list, path)
    try:
        return PreTokenizer(stages).split_punct
    except TokenizerError as err:
        raise TokenizerError(f"{path}: field 'pre_tokenizer': {err}") from err
