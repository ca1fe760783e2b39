"""A tiny, slow, obviously-correct byte-pair encoding: the test oracle for the fast code.

This is the lecture's algorithm written as plainly as possible (lecture 001, "Byte Pair
Encoding"; Sennrich et al. 2016, Algorithm 1): after every merge, *recount* all symbol pairs
over the word-frequency table and merge the most frequent one. Ties go to the largest pair
(compared as strings), the rule of `subword-nmt learn-bpe`. Encoding applies the learned merges
in rank order, each to every non-overlapping occurrence from left to right.
Cost: O(merges x corpus); only use it on small inputs.
"""

from __future__ import annotations

Word = tuple[str, ...]


def merge_word(word: Word, left: str, right: str) -> Word:
    """Replace every non-overlapping occurrence of (left, right) in `word`, left to right."""
    out: list[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == left and word[i + 1] == right:
            out.append(left + right)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def pair_counts(vocab: dict[Word, int]) -> dict[tuple[str, str], int]:
    """Count every adjacent symbol pair, weighted by word frequency."""
    counts: dict[tuple[str, str], int] = {}
    for word, freq in vocab.items():
        for i in range(len(word) - 1):
            pair = (word[i], word[i + 1])
            counts[pair] = counts.get(pair, 0) + freq
    return counts


def learn(vocab: dict[Word, int], num_merges: int, min_frequency: int = 2) -> list[tuple[str, str]]:
    """Learn merges from {word as symbols: frequency}, recounting all pairs after each merge."""
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        counts = pair_counts(vocab)
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p))
        if counts[best] < min_frequency:
            break
        merges.append(best)
        new_vocab: dict[Word, int] = {}
        for word, freq in vocab.items():
            merged = merge_word(word, *best)
            new_vocab[merged] = new_vocab.get(merged, 0) + freq
        vocab = new_vocab
    return merges


def split_word(word: str, end_of_word: str | None) -> Word:
    """Characters of `word`; the last one carries the end-of-word marker if there is one."""
    if end_of_word is None:
        return tuple(word)
    return (*word[:-1], word[-1] + end_of_word)


def word_table(lines: list[str], end_of_word: str | None) -> dict[Word, int]:
    """Words are the space-separated pieces of each line (subword-nmt's pre-tokenization)."""
    vocab: dict[Word, int] = {}
    for line in lines:
        for w in line.strip("\r\n ").split(" "):
            if w:
                key = split_word(w, end_of_word)
                vocab[key] = vocab.get(key, 0) + 1
    return vocab


def encode_word(word: Word, merges: list[tuple[str, str]]) -> Word:
    """Apply the merges to one word, lowest rank first, until none applies."""
    rank = {pair: i for i, pair in reversed(list(enumerate(merges)))}
    while True:
        candidates = [
            rank[(word[i], word[i + 1])]
            for i in range(len(word) - 1)
            if (word[i], word[i + 1]) in rank
        ]
        if not candidates:
            return word
        word = merge_word(word, *merges[min(candidates)])
