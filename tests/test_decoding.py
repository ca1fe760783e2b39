"""Greedy and beam search against a scripted fake decoder: hand-computed scores, a brute-force
search over every output, a per-sentence reference loop, cache reordering, batch invariance."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from transformer.decoding import SpecialIds, beam_search, greedy_decode, length_penalty
from transformer.fast.topk import row_max, row_topk

PAD, BOS, EOS, A, B, C = 0, 1, 2, 3, 4, 5
IDS = SpecialIds(bos=BOS, eos=EOS, pad=PAD)
NEG = float("-inf")


class FakeCache:
    """Remembers each row's prefix; `reorder` must follow the beams or the script breaks."""

    def __init__(self) -> None:
        self.prefix: torch.Tensor | None = None  # (N, t)

    @property
    def length(self) -> int:
        return 0 if self.prefix is None else self.prefix.size(1)

    def reorder(self, index: torch.Tensor, cross: bool | torch.Tensor = True) -> None:
        self.prefix = self.prefix[index]


class ScriptedDecoder:
    """next-token probabilities = script(source ids, prefix ids without <s>) -> {token: prob};
    tokens absent from the dict (and <pad>, <s>) get probability 0."""

    def __init__(self, vocab: int, script) -> None:
        self.vocab, self.script = vocab, script
        self.fed_tokens = 0

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        return src.float().unsqueeze(-1)  # (B, S, 1): the source travels as the "memory"

    def decode(self, tgt, memory, src_pad_mask, cache=None):
        self.fed_tokens += tgt.numel()
        full = tgt if cache is None or cache.prefix is None else torch.cat([cache.prefix, tgt], 1)
        if cache is not None:
            cache.prefix = full
        start = full.size(1) - tgt.size(1)
        logits = torch.full((tgt.size(0), tgt.size(1), self.vocab), NEG)
        group = full.size(0) // memory.size(0)  # target rows per memory row (beams)
        for row in range(full.size(0)):
            sent = row // group
            source = tuple(memory[sent, ~src_pad_mask[sent], 0].long().tolist())
            for pos in range(start, full.size(1)):
                prefix = tuple(full[row, 1 : pos + 1].tolist())
                for token, prob in self.script(source, prefix).items():
                    logits[row, pos - start, token] = math.log(prob) if prob > 0 else NEG
        return logits


def random_script(vocab: int, eos_weight: float = 1.0):
    """A fixed pseudo-random distribution for every (source, prefix)."""

    def script(source, prefix):
        rng = random.Random(hash((source, prefix)))
        weights = {t: rng.random() ** 3 for t in range(EOS, vocab)}
        weights[EOS] *= eos_weight
        total = sum(weights.values())
        return {t: w / total for t, w in weights.items()}

    return script


def batch_of(*sentences: list[int]) -> torch.Tensor:
    width = max(map(len, sentences))
    return torch.tensor([s + [PAD] * (width - len(s)) for s in sentences])


def lp(n: int, alpha: float) -> float:
    return ((5 + n) / 6) ** alpha


def reference_greedy(model, sentence: list[int], limit: int) -> tuple[list[int], float]:
    """One sentence, full recomputation, a plain Python argmax."""
    src = torch.tensor([sentence])
    memory, mask = model.encode(src), src.eq(PAD)
    tokens, total = [], 0.0
    while len(tokens) < limit and (not tokens or tokens[-1] != EOS):
        logits = model.decode(torch.tensor([[BOS, *tokens]]), memory, mask)[0, -1]
        logp = logits.log_softmax(-1).tolist()
        best = max(range(len(logp)), key=lambda t: logp[t])
        tokens.append(best)
        total += logp[best]
    return tokens, total


SOURCES = [[3, 4, 5], [5], [4, 4, 3, 5, 3], [3, 3]]


@pytest.mark.parametrize("use_cache", [False, True])
def test_greedy_matches_reference_loop(use_cache):
    model = ScriptedDecoder(8, random_script(8, eos_weight=0.5))
    hyps = greedy_decode(
        model, batch_of(*SOURCES), IDS, max_len_offset=4, use_cache=use_cache, make_cache=FakeCache
    )
    for sentence, hyp in zip(SOURCES, hyps, strict=True):
        tokens, total = reference_greedy(model, sentence, len(sentence) + 4)
        assert hyp.tokens == tokens
        assert hyp.logprob == pytest.approx(total, abs=1e-5)
        assert hyp.finished == (tokens[-1] == EOS)


def test_greedy_length_limits_and_min_len():
    never_eos = ScriptedDecoder(6, lambda s, p: {A: 0.7, B: 0.3})
    hyps = greedy_decode(never_eos, batch_of(*SOURCES), IDS, max_len_offset=3, make_cache=FakeCache)
    assert [len(h.tokens) for h in hyps] == [len(s) + 3 for s in SOURCES]
    assert all(not h.finished for h in hyps)
    assert hyps[0].logprob == pytest.approx(6 * math.log(0.7))
    capped = greedy_decode(
        never_eos, batch_of(*SOURCES), IDS, max_positions=4, make_cache=FakeCache
    )
    assert [len(h.tokens) for h in capped] == [4, 4, 4, 4]
    # </s> is the likeliest token everywhere; min_len=3 forces three tokens before it.
    eager = ScriptedDecoder(6, lambda s, p: {EOS: 0.6, A: 0.3, B: 0.1})
    forced = greedy_decode(eager, batch_of([3]), IDS, min_len=3, make_cache=FakeCache)[0]
    assert forced.tokens == [A, A, A, EOS]
    assert forced.logprob == pytest.approx(3 * math.log(0.3) + math.log(0.6))


@pytest.mark.parametrize("beam", [1, 3])
def test_per_sentence_lengths(beam):
    """</s> is the likeliest token everywhere; per-sentence min = max lengths force each
    sentence to exactly its own length, whatever its neighbours do."""
    eager = ScriptedDecoder(6, lambda s, p: {EOS: 0.6, A: 0.3, B: 0.1})
    lengths = torch.tensor([2, 5, 1, 3])
    src = batch_of(*SOURCES)
    if beam == 1:
        hyps = greedy_decode(
            eager, src, IDS, min_len=lengths, max_len=lengths, make_cache=FakeCache
        )
    else:
        hyps = [
            h[0]
            for h in beam_search(
                eager,
                src,
                IDS,
                beam_size=beam,
                min_len=lengths,
                max_len=lengths,
                make_cache=FakeCache,
            )
        ]
    assert [h.tokens for h in hyps] == [[A] * n for n in lengths.tolist()]
    assert [h.logprob for h in hyps] == pytest.approx([n * math.log(0.3) for n in lengths.tolist()])
    with pytest.raises(ValueError, match="shape"):
        greedy_decode(eager, src, IDS, max_len=lengths[:2])


def test_greedy_uses_cache_incrementally():
    model = ScriptedDecoder(6, lambda s, p: {A: 1.0})
    greedy_decode(model, batch_of([3, 4]), IDS, max_len=5, make_cache=FakeCache)
    assert model.fed_tokens == 5  # one new token per step
    model.fed_tokens = 0
    greedy_decode(model, batch_of([3, 4]), IDS, max_len=5, use_cache=False)
    assert model.fed_tokens == 1 + 2 + 3 + 4 + 5  # the whole prefix every step


def test_length_penalty_changes_the_winner():
    """[</s>] at p=0.45 vs [a, </s>] at 0.44 * 0.99: alpha=0 prefers the short one, alpha=0.6
    the long one: -0.8311/lp(2) = -0.7575 > -0.7985."""
    script = {
        (): {EOS: 0.45, A: 0.44, B: 0.11},
        (A,): {EOS: 0.99, A: 0.01},
        (B,): {EOS: 0.5, A: 0.5},
    }
    model = ScriptedDecoder(6, lambda s, p: script.get(p, {EOS: 0.5, A: 0.5}))
    src = batch_of([3])
    short = beam_search(model, src, IDS, beam_size=2, alpha=0.0, make_cache=FakeCache)[0][0]
    assert short.tokens == [EOS] and short.score == pytest.approx(math.log(0.45))
    long = beam_search(model, src, IDS, beam_size=2, alpha=0.6, exact=True, make_cache=FakeCache)[
        0
    ][0]
    assert long.tokens == [A, EOS]
    assert long.logprob == pytest.approx(math.log(0.44) + math.log(0.99))
    assert long.score == pytest.approx((math.log(0.44) + math.log(0.99)) / lp(2, 0.6))
    # The default (current-length) stopping rule quits after step 1: the live [a] at
    # log 0.44 / lp(1) cannot beat [</s>] at log 0.45 / lp(1).
    quick = beam_search(model, src, IDS, beam_size=2, alpha=0.6, make_cache=FakeCache)[0][0]
    assert quick.tokens == [EOS]


def test_never_returns_worse_than_a_finished_hypothesis():
    """[</s>] finishes at step 1 (p=0.3, rank 2 of 2); every longer path scores lower."""
    script = {(): {A: 0.6, EOS: 0.3, B: 0.1}, (A,): {EOS: 0.1, A: 0.45, B: 0.45}}
    model = ScriptedDecoder(6, lambda s, p: script.get(p, {A: 0.5, B: 0.5}))
    for exact in (False, True):
        best = beam_search(
            model,
            batch_of([3]),
            IDS,
            beam_size=2,
            alpha=0.0,
            max_len=3,
            exact=exact,
            make_cache=FakeCache,
        )[0][0]
        assert best.tokens == [EOS] and best.finished
        assert best.logprob == pytest.approx(math.log(0.3))


def test_max_length_cuts_live_beams():
    script = {(): {A: 0.5, B: 0.3, C: 0.2}}
    model = ScriptedDecoder(6, lambda s, p: script.get(p, {A: 0.9, B: 0.1}))
    hyps = beam_search(
        model,
        batch_of([3, 4]),
        IDS,
        beam_size=3,
        alpha=1.0,
        n_best=3,
        max_len=2,
        make_cache=FakeCache,
    )[0]
    expect = [([A, A], 0.5 * 0.9), ([B, A], 0.3 * 0.9), ([C, A], 0.2 * 0.9)]
    assert [h.tokens for h in hyps] == [t for t, _ in expect]
    for hyp, (_, prob) in zip(hyps, expect, strict=True):
        assert not hyp.finished
        assert hyp.logprob == pytest.approx(math.log(prob))
        assert hyp.score == pytest.approx(math.log(prob) / lp(2, 1.0))


def brute_force(script, source, limit, alpha):
    """Every output of at most `limit` tokens (ending in </s> or cut at the limit)."""
    out = []
    for n in range(1, limit + 1):
        for body in itertools.product([EOS, A, B], repeat=n):
            if EOS in body[:-1] or (n < limit and body[-1] != EOS):
                continue
            probs = [script(source, body[:i]).get(t, 0.0) for i, t in enumerate(body)]
            if min(probs) > 0:
                total = sum(map(math.log, probs))
                out.append((total / lp(n, alpha), list(body), total))
    return sorted(out, key=lambda x: x[0], reverse=True)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_wide_exact_beam_equals_brute_force(alpha):
    script = random_script(5, eos_weight=0.4)  # tokens </s>, a, b
    model = ScriptedDecoder(5, script)
    hyps = beam_search(
        model,
        batch_of([3, 4]),
        IDS,
        beam_size=32,
        alpha=alpha,
        n_best=6,
        max_len=4,
        exact=True,
        make_cache=FakeCache,
    )[0]
    expect = brute_force(script, (3, 4), 4, alpha)[:6]
    assert [h.tokens for h in hyps] == [tokens for _, tokens, _ in expect]
    for hyp, (score, _, total) in zip(hyps, expect, strict=True):
        assert hyp.score == pytest.approx(score, abs=1e-5)
        assert hyp.logprob == pytest.approx(total, abs=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_one_is_greedy(alpha):
    model = ScriptedDecoder(8, random_script(8, eos_weight=0.5))
    src = batch_of(*SOURCES)
    greedy = greedy_decode(model, src, IDS, max_len_offset=4, make_cache=FakeCache)
    beams = beam_search(
        model, src, IDS, beam_size=1, alpha=alpha, max_len_offset=4, make_cache=FakeCache
    )
    for g, (b,) in zip(greedy, beams, strict=True):
        assert b.tokens == g.tokens
        assert b.logprob == pytest.approx(g.logprob, abs=1e-5)


@pytest.mark.parametrize("exact", [False, True])
def test_beam_cache_and_batch_invariance(exact):
    model = ScriptedDecoder(8, random_script(8, eos_weight=0.3))
    src = batch_of(*SOURCES)
    kw = dict(beam_size=3, alpha=0.6, n_best=2, max_len_offset=3, exact=exact)
    cached = beam_search(model, src, IDS, make_cache=FakeCache, **kw)
    uncached = beam_search(model, src, IDS, use_cache=False, **kw)
    alone = [beam_search(model, batch_of(s), IDS, make_cache=FakeCache, **kw)[0] for s in SOURCES]
    for a, b, c in zip(cached, uncached, alone, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b] == [h.tokens for h in c]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)
        assert [h.score for h in a] == pytest.approx([h.score for h in c], abs=1e-6)


def test_rejects_bad_settings():
    model = ScriptedDecoder(6, lambda s, p: {A: 1.0})
    src = batch_of([3])
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, src, IDS, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, src, IDS, beam_size=0)
    with pytest.raises(ValueError, match="alpha"):
        beam_search(model, src, IDS, alpha=-1.0)
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(model, src, IDS, max_len=0)


def test_length_penalty_formula():
    assert length_penalty(1, 0.6) == pytest.approx(1.0)
    assert length_penalty(7, 0.6) == pytest.approx(2.0**0.6)


@pytest.mark.parametrize("vocab", [1, 50, 127, 128, 130, 8000, 8188])
def test_row_max_equals_argmax(vocab):
    """row_max against torch's amax and argmax (first occurrence), with ties across blocks,
    -inf rows but one, and a maximum in the tail after the last block of 64."""
    gen = torch.Generator().manual_seed(vocab)
    logits = torch.randn(7, vocab, generator=gen)
    logits[0, vocab // 2 :] = logits[0].max() + 1.0  # a tie: the first occurrence wins
    logits[1] = float("-inf")
    logits[1, -1] = -3.0
    logits[2, -1] = 100.0  # the last position (the tail when vocab % 64)
    logits[3] = 0.5  # all equal
    value, index = row_max(logits)
    assert index.dtype == torch.int64
    assert torch.equal(index, logits.argmax(dim=-1))
    assert torch.equal(value, logits.amax(dim=-1))
    logits[4, -1] = float("nan")  # NaN, in the tail when vocab % 64: max's answer, NaN
    value, index = row_max(logits)
    expected_value, expected_index = logits.max(dim=-1)
    assert value[4].isnan() and index[4] == expected_index[4]
    assert torch.equal(value[:4], expected_value[:4]) and torch.equal(index[:4], expected_index[:4])


def sort_reference(row: list[float], k: int) -> list[float]:
    """The k largest values of a row by a plain Python sort (NaN-free rows)."""
    return sorted(row, reverse=True)[:k]


@pytest.mark.parametrize("vocab", [1, 50, 255, 256, 300, 8000, 8188])
@pytest.mark.parametrize("k", [1, 2, 8, 16])
def test_row_topk_equals_a_full_sort(vocab, k):
    """row_topk against a plain sort of each row: the same values in the same order, and
    indices that point at them (distinct values: exactly topk's indices). Rows with ties
    across blocks, all equal, -inf but a few, large values in the tail, and one with NaN."""
    k = min(k, vocab)
    gen = torch.Generator().manual_seed(vocab * 31 + k)
    logits = torch.randn(8, vocab, generator=gen)
    logits[0, vocab // 3 :: 7] = logits[0].max() + 1.0  # ties among the largest
    logits[1] = float("-inf")
    logits[1, -3:] = torch.tensor([-3.0, -1.0, -2.0])[: min(3, vocab)]
    logits[2, -k:] = 100.0 + torch.arange(k, dtype=torch.float)  # the tail when vocab % 64
    logits[3] = 0.5  # all equal
    logits[4, ::64] = 50.0  # one maximum at the start of every block
    distinct = torch.randperm(vocab, generator=gen).float()  # row 5: no ties at all
    logits[5] = distinct
    values, index = row_topk(logits, k)
    assert values.shape == index.shape == (8, k) and index.dtype == torch.int64
    for row in range(8):
        assert values[row].tolist() == sort_reference(logits[row].tolist(), k)
        assert torch.equal(logits[row, index[row]], values[row])
        assert len(set(index[row].tolist())) == k  # k different positions
    assert torch.equal(index[5], distinct.topk(k).indices)
    logits[6, vocab // 2] = float("nan")  # left to topk: NaN ranks first there
    values, index = row_topk(logits, k)
    expected = logits.topk(k, dim=-1)
    assert torch.equal(values[6].isnan(), expected.values[6].isnan())
    assert torch.equal(index[6], expected.indices[6])
