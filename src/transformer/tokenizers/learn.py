"""The fast byte-pair-encoding learner shared by `BPE.train` and `ByteBPE.train`.

Byte-pair encoding (Gage 1994; Sennrich et al. 2016, Algorithm 1): count adjacent symbol pairs
over a word-frequency table, merge the most frequent pair everywhere, repeat. Recounting the
whole table after each merge costs O(corpus) per merge; this learner keeps the pair counts
up to date *incrementally*: a merge of (a, b) only changes the pairs next to its occurrences,
and only in the words that contain it (an index pair -> words finds them).

Implementation notes (all pure Python, no torch):
- every symbol gets an integer id and each word is stored as a `str` with one character per
  symbol (`chr(id)`), so "does this word contain the pair?" is a C-level substring test and
  merging is `str.replace`, whose left-to-right, non-overlapping semantics are exactly BPE's;
- the most frequent pair comes from a lazy max-heap: an entry is pushed whenever a pair's
  count grows; entries are upper bounds that get refreshed when popped;
- ties are broken like `subword-nmt learn-bpe`: the largest (count, (left, right)) wins, with
  the symbols compared as strings. The heap orders pairs by an "inverted" key so that the
  lexicographically largest pair comes out first;
- symbols are identified by their string, as in subword-nmt: two merges whose results spell
  the same string produce the same symbol.
"""

from __future__ import annotations

import gc
import heapq
from collections import defaultdict
from collections.abc import Mapping

from tqdm import tqdm

Pair = tuple[str, str]


def _inverted(symbol: str) -> tuple[int, ...]:
    """A key that sorts in the *reverse* order of `symbol` (prefixes sort after extensions)."""
    return (*(-ord(ch) for ch in symbol), 1)


class _Symbols:
    """The symbol table: string <-> id, plus each symbol's inverted sort key."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.strings: list[str] = []
        self.inverted: list[tuple[int, ...]] = []

    def char(self, symbol: str) -> str:
        """The one-character code of `symbol`, adding it to the table if new."""
        sid = self.ids.get(symbol)
        if sid is None:
            sid = self.ids[symbol] = len(self.strings)
            self.strings.append(symbol)
            self.inverted.append(_inverted(symbol))
        return chr(sid)


def learn_merges(
    word_counts: Mapping[tuple[str, ...], int],
    num_merges: int,
    min_frequency: int = 2,
    progress: bool = False,
) -> list[Pair]:
    """Learn up to `num_merges` merges from a table {word as a tuple of symbols: frequency}.

    Stops early when no pair occurs at least `min_frequency` times. Returns the merged pairs
    (left, right) in merge order.
    """
    table = _Symbols()
    codes = {sym: table.char(sym) for sym in sorted(set().union(*word_counts))}
    words: list[str] = []
    freqs: list[int] = []
    for word, freq in word_counts.items():
        if freq > 0 and len(word) > 0:
            words.append("".join(map(codes.__getitem__, word)))
            freqs.append(freq)
    return _learn(table, words, freqs, num_merges, min_frequency, progress)


def learn_word_merges(
    word_counts: Mapping[str, int],
    end_of_word: str | None,
    num_merges: int,
    min_frequency: int = 2,
    progress: bool = False,
) -> list[Pair]:
    """`learn_merges` for words given as strings: a word's symbols are its characters, the
    last one carrying `end_of_word` (Sennrich et al.'s `</w>`) when it is not None.

    Same result as `learn_merges({(*w[:-1], w[-1] + end_of_word): f})`, built faster (the
    symbol codes come from `str.translate`).
    """
    table = _Symbols()
    chars = sorted(set().union(*word_counts))
    inner = {ord(ch): table.char(ch) for ch in chars}
    if end_of_word is None:
        words = [w.translate(inner) for w in word_counts]
    else:
        final = {ch: table.char(ch + end_of_word) for ch in chars}
        words = [w[:-1].translate(inner) + final[w[-1]] for w in word_counts]
    freqs = list(word_counts.values())
    keep = [i for i, (w, f) in enumerate(zip(words, freqs)) if w and f > 0]
    if len(keep) < len(words):
        words, freqs = [words[i] for i in keep], [freqs[i] for i in keep]
    return _learn(table, words, freqs, num_merges, min_frequency, progress)


def _learn(
    table: _Symbols,
    words: list[str],
    freqs: list[int],
    num_merges: int,
    min_frequency: int,
    progress: bool,
) -> list[Pair]:
    """The merge loop over words coded one character per symbol (see the module docstring).

    Python's cyclic garbage collector is paused meanwhile: the loop allocates millions of
    short-lived acyclic objects, which would only trigger pointless collections.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _merge_loop(table, words, freqs, num_merges, min_frequency, progress)
    finally:
        if was_enabled:
            gc.enable()


def _merge_loop(
    table: _Symbols,
    words: list[str],
    freqs: list[int],
    num_merges: int,
    min_frequency: int,
    progress: bool,
) -> list[Pair]:
    stats, where = _count_pairs(words, freqs)
    heap = [_entry(table, pair, count) for pair, count in stats.items() if count >= min_frequency]
    heapq.heapify(heap)
    merges: list[Pair] = []
    bar = _progress_bar(num_merges, progress)
    while len(merges) < num_merges:
        pair = _pop_best(heap, stats, table, min_frequency)
        if pair is None:
            break
        left, right = table.strings[ord(pair[0])], table.strings[ord(pair[1])]
        merges.append((left, right))
        grown = _apply_merge(pair, table.char(left + right), words, freqs, stats, where)
        for q in grown:
            count = stats[q]
            if count >= min_frequency:
                heapq.heappush(heap, _entry(table, q, count))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


def _entry(table: _Symbols, pair: str, count: int) -> tuple:
    inv = table.inverted
    return (-count, inv[ord(pair[0])], inv[ord(pair[1])], pair)


def _count_pairs(words: list[str], freqs: list[int]) -> tuple[dict[str, int], dict[str, list]]:
    """Initial pair counts and the index pair -> ids of the words that contain it.

    The index may list a word more than once, or after the word lost the pair: users check.
    """
    stats: defaultdict[str, int] = defaultdict(int)
    where: defaultdict[str, list] = defaultdict(list)
    for idx, (word, freq) in enumerate(zip(words, freqs)):
        for i in range(len(word) - 1):
            pair = word[i : i + 2]
            stats[pair] += freq
            where[pair].append(idx)
    return stats, where


def _pop_best(heap: list, stats: dict[str, int], table: _Symbols, min_frequency: int) -> str | None:
    """Pop stale heap entries until the top one is exact; return its pair (None: heap empty)."""
    while heap:
        negative, _, _, pair = heap[0]
        count = stats.get(pair, 0)
        if -negative == count:
            heapq.heappop(heap)
            return pair
        if count >= min_frequency:
            heapq.heapreplace(heap, _entry(table, pair, count))
        else:
            heapq.heappop(heap)
    return None


def _apply_merge(
    pair: str,
    merged: str,
    words: list[str],
    freqs: list[int],
    stats: defaultdict[str, int],
    where: defaultdict[str, list],
) -> set[str]:
    """Merge `pair` (two symbol codes) into `merged` in every word that has it.

    Updates the pair counts and the index in place; returns the pairs whose counts grew.
    """
    a, b = pair
    grown: set[str] = set()
    for idx in where.pop(pair, ()):
        word = words[idx]
        i = word.find(pair)
        if i < 0:
            continue  # stale index entry: an earlier merge removed the pair from this word
        freq = freqs[idx]
        new = words[idx] = word.replace(pair, merged)
        n = len(word)
        if len(new) == n - 1:  # one occurrence: only its two neighbours change
            if i:
                x = word[i - 1]
                stats[x + a] -= freq
                q = x + merged
                stats[q] += freq
                where[q].append(idx)
                grown.add(q)
            if i + 2 < n:
                y = word[i + 2]
                stats[b + y] -= freq
                q = merged + y
                stats[q] += freq
                where[q].append(idx)
                grown.add(q)
        else:  # several occurrences: recount this word's pairs
            for i in range(n - 1):
                stats[word[i : i + 2]] -= freq
            for i in range(len(new) - 1):
                q = new[i : i + 2]
                stats[q] += freq
                if merged in q:
                    where[q].append(idx)
                    grown.add(q)
    stats.pop(pair, None)
    return grown


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    return tqdm(total=total, desc="BPE merges", unit="merge")
