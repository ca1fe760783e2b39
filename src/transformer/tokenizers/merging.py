"""The BPE encoder shared by `BPE` and `ByteBPE`: the merge loop and the per-piece cache.

Both tokenizers cut text into pieces (words, or GPT-2's regex pieces), turn a piece into the ids
of its initial symbols (characters, or bytes) and then apply the learned merges. Here a piece is
a list of token ids and each adjacent pair's merge is one integer, its *code*
`rank << 32 | merged id`, so `min` finds the next merge and `code & MASK` is its result. After a
merge only the two neighbouring pairs are looked up again.

Two merge rules exist and both are kept:
- `every_occurrence=True` (`subword-nmt apply-bpe`, classic BPE): the lowest-ranked pair is
  merged at all its non-overlapping occurrences, left to right, before the next pair;
- `every_occurrence=False` (tiktoken, Hugging Face `tokenizers`, GPT-2): only the leftmost
  occurrence is merged, then the lowest-ranked pair is looked for again.
They differ only for merge lists where a merge result takes part in a lower-ranked merge.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from transformer.tokenizers.files import TokenizerError

SHIFT = 32  # a pair's code: rank << SHIFT | merged id
MASK = (1 << SHIFT) - 1
NO_MERGE = 1 << 80  # the code of a pair that is not a merge (larger than any real code)
CACHE_LIMIT = 1 << 20  # pieces; a cache is cleared when it grows past this

Pair = tuple[int, int]
T = TypeVar("T")


def merge_table(
    vocab: Mapping[str, int], merges: Sequence[tuple[str, str]], owner: str
) -> dict[Pair, int]:
    """(left id, right id) -> rank << 32 | merged id; a repeated merge keeps its first rank.

    Every merge's two parts and its result must be tokens of `vocab` (else a `TokenizerError`
    that starts with `owner`, the class name).
    """
    table: dict[Pair, int] = {}
    for rank, (a, b) in enumerate(merges):
        if a not in vocab or b not in vocab or a + b not in vocab:
            raise TokenizerError(f"{owner}: merge {rank} {(a, b)!r} is not in the vocabulary")
        key = (vocab[a], vocab[b])
        if key not in table:
            table[key] = rank << SHIFT | vocab[a + b]
    return table


def apply_merges(
    ids: list[int], get: Callable[[Pair, int], int], every_occurrence: bool
) -> list[int]:
    """Merge `ids` (a piece's initial symbols, changed in place and returned) until no adjacent
    pair is a merge. `get` is the merge table's `dict.get`; ids that are in no merge (such as
    negative placeholders for unknown symbols) are never merged."""
    none = NO_MERGE
    codes = list(map(get, itertools.pairwise(ids), itertools.repeat(none)))
    while codes:
        best = min(codes)
        if best == none:
            break
        i = codes.index(best)
        while True:
            merged = ids[i] = best & MASK
            del ids[i + 1], codes[i]
            if i:
                codes[i - 1] = get((ids[i - 1], merged), none)
            if i < len(codes):
                codes[i] = get((merged, ids[i + 1]), none)
            if not every_occurrence or best not in codes:  # (earlier ones are merged already)
                break
            i = codes.index(best, i + 1)
    return ids


class PieceCache(Generic[T]):
    """A piece -> encoding cache in front of `compute` (a piece's ids, or its token strings).

    `join(pieces)` concatenates the encodings of many pieces, computing each distinct new piece
    once. The cache is cleared when it holds `limit` pieces (default `CACHE_LIMIT`).
    """

    def __init__(self, compute: Callable[[str], Sequence[T]], limit: int | None = None) -> None:
        self.compute = compute
        self.limit = CACHE_LIMIT if limit is None else limit
        self.table: dict[str, Sequence[T]] = {}

    def __len__(self) -> int:
        return len(self.table)

    def clear(self) -> None:
        self.table.clear()

    def get(self, piece: str) -> Sequence[T]:
        """The encoding of one piece (computed and stored if new)."""
        found = self.table.get(piece)
        return found if found is not None else self._add(piece)

    def _add(self, piece: str) -> Sequence[T]:
        out = self.compute(piece)
        if len(self.table) >= self.limit:
            self.table.clear()
        self.table[piece] = out
        return out

    def join(self, pieces: list[str]) -> list[T]:
        """The concatenated encodings of `pieces`."""
        table = self.table
        parts = list(map(table.get, pieces))
        if None in parts:  # pieces seen for the first time: compute each distinct one once
            for piece in set(pieces).difference(table):
                self._add(piece)
            parts = list(map(table.get, pieces))
            if None in parts:  # the cache overflowed and was cleared meanwhile
                parts = [table.get(p) or self._add(p) for p in pieces]
        return list(itertools.chain.from_iterable(parts))
