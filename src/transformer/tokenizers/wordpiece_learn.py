"""Learning a WordPiece vocabulary (Schuster & Nakajima 2012; Wu et al. 2016, Section 4.1).

The lecture: WordPiece merges "by likelihood given by language models, not by frequency".
Under a unigram language model over the current pieces, merging the pair (a, b) raises the
corpus log-likelihood most when count(ab) / (count(a) · count(b)) is largest, so
`criterion="likelihood"` merges the pair of highest score

    score(a, b) = count(a b) / (count(a) · count(b))            (counts weighted by word frequency)

(the rule of the WordPiece papers as Hugging Face's course describes it; ties: higher pair
count, then the smaller pair of symbol ids). `criterion="frequency"` merges the most frequent
pair (ties: the smaller pair of ids), which is exactly what Hugging Face `tokenizers`'
`WordPieceTrainer` does: it is its BPE trainer with a `##` prefix.

The two rules part by design: the likelihood score favours pairs of *rare* pieces (a pair
seen twice whose parts occur only there scores 1/2; "man" = ma + ##n scores low because ##n
is everywhere), so for the same size its vocabulary covers fewer frequent words. Tokens per
word (BERT's words, uncased, min_frequency 2; `frequency` = `WordPieceTrainer` up to count
ties) on the training text:

    corpus                      2,000 tokens            8,000 tokens
                                likelihood  frequency   likelihood  frequency
    Multi30k train en           2.912       1.172       1.789       1.021   (val 1.798 / 1.030)
    Multi30k train de           3.786       1.303       2.973       1.083   (val 2.994 / 1.102)
    Tiny Shakespeare            2.655       1.222       1.714       1.038
    Multi30k train en+de                                2.860       1.096

Symbols: each word starts as its first character plus `##`-prefixed continuation characters
("walk" -> w ##a ##l ##k); merging (a, b) makes a + b without b's `##` (w + ##a -> wa). The
vocabulary is the specials, every character seen (sorted by code point: a character seen only
inside words can still start a word), the `##` characters (sorted), then the merged symbols in
merge order, until `vocab_size` tokens or no pair occurs `min_frequency` times.

Pure Python: words coded one character per symbol (`chr(id)`), merging by `str.replace`,
incremental pair counts, an index pair -> words and a lazy max-heap, as in `learn.py`. Under
the likelihood rule a merge also changes count(a) and count(b), raising the score of every
pair that contains a or b: those pairs are re-pushed (an index symbol -> pairs finds them).
"""

from __future__ import annotations

import gc
import heapq
from collections import defaultdict
from collections.abc import Mapping, Sequence

from tqdm import tqdm

CRITERIA = ("likelihood", "frequency")


class _State:
    """Words as symbol-code strings, pair and symbol counts, and the indexes."""

    def __init__(self, tokens: list[str], words: list[str], freqs: list[int], likelihood: bool):
        self.tokens = tokens
        self.ids = {tok: i for i, tok in enumerate(tokens)}
        self.words, self.freqs = words, freqs
        self.likelihood = likelihood
        self.sym_count: defaultdict[int, int] = defaultdict(int)
        self.pairs: defaultdict[str, int] = defaultdict(int)
        self.where: defaultdict[str, list[int]] = defaultdict(list)
        self.pairs_of: defaultdict[str, set[str]] = defaultdict(set)  # symbol code -> pairs
        for idx, (word, freq) in enumerate(zip(words, freqs)):
            for ch in word:
                self.sym_count[ord(ch)] += freq
            for i in range(len(word) - 1):
                pair = word[i : i + 2]
                self.pairs[pair] += freq
                self.where[pair].append(idx)
        for pair in self.pairs:
            self.pairs_of[pair[0]].add(pair)
            self.pairs_of[pair[1]].add(pair)

    def key(self, pair: str) -> tuple:
        """The heap key of a pair (smallest = best) from the current counts."""
        a, b = ord(pair[0]), ord(pair[1])
        count = self.pairs[pair]
        if self.likelihood:
            return (-count / (self.sym_count[a] * self.sym_count[b]), -count, a, b, pair)
        return (-count, a, b, pair)

    def symbol(self, text: str) -> str:
        """The code of the symbol spelled `text`, a new vocabulary entry if unseen."""
        sid = self.ids.get(text)
        if sid is None:
            sid = self.ids[text] = len(self.tokens)
            self.tokens.append(text)
        return chr(sid)


def initial_vocab(
    word_counts: Mapping[str, int],
    specials: Sequence[str],
    prefix: str,
    order: Sequence[str] | None = None,
):
    """(tokens, words coded as strings, frequencies): specials, chars, prefix + chars.

    `order` lists the same initial tokens in another order (their ids break ties), e.g. a
    `WordPieceTrainer` vocabulary's, whose `##` characters come in hash-table order.
    """
    chars = sorted(set().union(*word_counts))
    inner = sorted({ch for word in word_counts for ch in word[1:]})
    tokens = list(specials)
    tokens += [ch for ch in chars if ch not in specials]
    tokens += [prefix + ch for ch in inner if prefix + ch not in specials]
    if order is not None:
        if sorted(order) != sorted(tokens) or len(set(order)) != len(order):
            raise ValueError("order must list exactly the specials and the (##) characters")
        tokens = list(order)
    ids = {tok: i for i, tok in enumerate(tokens)}
    first = {ord(ch): chr(ids[ch]) for ch in chars}
    cont = {ord(ch): chr(ids[prefix + ch]) for ch in inner}
    words, freqs = [], []
    for word, freq in word_counts.items():
        if word and freq > 0:
            words.append(word[0].translate(first) + word[1:].translate(cont))
            freqs.append(freq)
    return tokens, words, freqs


def learn_wordpiece(
    word_counts: Mapping[str, int],
    vocab_size: int,
    specials: Sequence[str],
    min_frequency: int = 2,
    criterion: str = "likelihood",
    prefix: str = "##",
    progress: bool = False,
    order: Sequence[str] | None = None,
) -> list[str]:
    """The vocabulary (tokens in id order) learned from {word: frequency}."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    tokens, words, freqs = initial_vocab(word_counts, specials, prefix, order)
    state = _State(tokens, words, freqs, criterion == "likelihood")
    was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived acyclic objects (see learn.py)
    try:
        _merge_loop(state, vocab_size, max(min_frequency, 1), prefix, progress)
    finally:
        if was_enabled:
            gc.enable()
    return state.tokens


def _merge_loop(state: _State, vocab_size: int, min_freq: int, prefix: str, progress: bool):
    heap = [state.key(p) for p, c in state.pairs.items() if c >= min_freq]
    heapq.heapify(heap)
    bar = None
    if progress:
        bar = tqdm(total=max(vocab_size - len(state.tokens), 0), desc="WordPiece", unit="tok")
    while len(state.tokens) < vocab_size:
        pair = _pop_best(state, heap, min_freq)
        if pair is None:
            break
        before = len(state.tokens)
        left, right = state.tokens[ord(pair[0])], state.tokens[ord(pair[1])]
        merged = state.symbol(left + right.removeprefix(prefix))
        touched = _apply_merge(state, pair, merged)
        for q in touched:
            if state.pairs.get(q, 0) >= min_freq:
                heapq.heappush(heap, state.key(q))
        if bar is not None:
            bar.update(len(state.tokens) - before)
    if bar is not None:
        bar.close()


def _pop_best(state: _State, heap: list, min_freq: int) -> str | None:
    """Pop stale entries until the top one is exact; return its pair (None: heap empty)."""
    while heap:
        top = heap[0]
        pair = top[-1]
        if state.pairs.get(pair, 0) < min_freq:
            heapq.heappop(heap)
            continue
        fresh = state.key(pair)
        if fresh == top:
            heapq.heappop(heap)
            return pair
        heapq.heapreplace(heap, fresh)
    return None


def _apply_merge(state: _State, pair: str, merged: str) -> set[str]:
    """Merge `pair` into `merged` in every word that has it; update the counts and indexes.

    Returns the pairs whose heap keys may have improved: the new pairs and, under the
    likelihood rule, every pair containing one of the merged symbols.
    """
    a, b = pair
    pairs, where, sym_count = state.pairs, state.where, state.sym_count
    touched: set[str] = set()
    for idx in where.pop(pair, ()):
        word = state.words[idx]
        if pair not in word:
            continue  # stale index entry
        freq = state.freqs[idx]
        new = state.words[idx] = word.replace(pair, merged)
        n_merged = len(word) - len(new)
        sym_count[ord(a)] -= n_merged * freq
        sym_count[ord(b)] -= n_merged * freq
        sym_count[ord(merged)] += n_merged * freq
        for i in range(len(word) - 1):
            pairs[word[i : i + 2]] -= freq
        for i in range(len(new) - 1):
            q = new[i : i + 2]
            pairs[q] += freq
            if merged in q:
                where[q].append(idx)
                touched.add(q)
    pairs.pop(pair, None)
    for q in touched:
        state.pairs_of[q[0]].add(q)
        state.pairs_of[q[1]].add(q)
    if state.likelihood:  # count(a), count(b) fell: every pair with a or b scores higher
        for sym in {a, b}:
            live = state.pairs_of[sym] = {q for q in state.pairs_of[sym] if pairs.get(q, 0) > 0}
            touched |= live
    return touched
