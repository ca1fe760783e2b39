"""Token-budget batching: every pair once per epoch, budgets kept, tensors equal a loop-built
reference, determinism, exact resume, and less padding than plain fixed-size batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import corpus_dir
from transformer.data import (
    DataError,
    EncodedParallel,
    FixedSizeBatcher,
    TokenBatcher,
    encode_parallel,
    load_multi30k,
)

PAD, BOS, EOS = 0, 1, 2


def make_data(src_rows: list[list[int]], tgt_rows: list[list[int]]) -> EncodedParallel:
    return EncodedParallel.from_lists(src_rows, tgt_rows)


def random_data(n: int = 500, seed: int = 0) -> tuple[EncodedParallel, list, list]:
    rng = np.random.default_rng(seed)
    src = [rng.integers(4, 50, rng.integers(1, 40)).tolist() for _ in range(n)]
    # Targets correlated with source length, as in translation.
    tgt = [rng.integers(4, 50, max(1, len(s) + rng.integers(-5, 6))).tolist() for s in src]
    return make_data(src, tgt), src, tgt


def reference_tensors(indices, src, tgt):
    """The batch tensors built row by row with Python lists."""
    S = max(len(src[i]) for i in indices)
    T = max(len(tgt[i]) for i in indices) + 1
    rows_src = [src[i] + [PAD] * (S - len(src[i])) for i in indices]
    rows_in = [[BOS, *tgt[i]] + [PAD] * (T - 1 - len(tgt[i])) for i in indices]
    rows_out = [[*tgt[i], EOS] + [PAD] * (T - 1 - len(tgt[i])) for i in indices]
    return torch.tensor(rows_src), torch.tensor(rows_in), torch.tensor(rows_out)


@pytest.mark.parametrize("max_tokens", [64, 300, 2000])
def test_each_pair_once_budget_kept_tensors_match(max_tokens):
    data, src, tgt = random_data()
    batcher = TokenBatcher(data, max_tokens, seed=3, pad_id=PAD, bos_id=BOS, eos_id=EOS)
    for epoch in range(3):
        seen = []
        for batch in batcher.epoch(epoch):
            B, S = batch.src.shape
            assert max_tokens >= B * S and batch.tgt_in.numel() <= max_tokens
            idx = batch.indices.tolist()
            ref_src, ref_in, ref_out = reference_tensors(idx, src, tgt)
            assert torch.equal(batch.src, ref_src)
            assert torch.equal(batch.tgt_in, ref_in) and torch.equal(batch.tgt_out, ref_out)
            assert batch.src.dtype == torch.int64
            assert batch.n_src_tokens == int(ref_src.ne(PAD).sum())
            assert batch.n_tgt_tokens == int(ref_out.ne(PAD).sum())
            seen += idx
        assert sorted(seen) == list(range(len(src)))


def test_fixed_size_batches_each_pair_once():
    data, src, tgt = random_data(n=103)
    batcher = FixedSizeBatcher(data, 10, seed=1)
    batches = list(batcher.epoch(2))
    assert [b.size for b in batches] == [10] * 10 + [3]
    assert sorted(i for b in batches for i in b.indices.tolist()) == list(range(103))
    ref = reference_tensors(batches[0].indices.tolist(), src, tgt)
    assert torch.equal(batches[0].src, ref[0]) and torch.equal(batches[0].tgt_out, ref[2])


def test_greedy_batches_are_full():
    """No batch could take the next pair of its sorted pool without breaking the budget."""
    data, _, _ = random_data()
    batcher = TokenBatcher(data, 400, seed=0, shuffle=False)
    plan = batcher.plan(0)
    s, t = data.src_lengths, data.tgt_lengths + 1
    for current, following in itertools.pairwise(plan):
        grown = np.append(current, following[0])
        assert len(grown) * max(s[grown].max(), t[grown].max()) > 400


def test_deterministic_given_seed_and_epoch():
    data, _, _ = random_data()

    def plan(seed, epoch):
        return [b.tolist() for b in TokenBatcher(data, 300, seed=seed).plan(epoch)]

    assert plan(5, 1) == plan(5, 1)
    assert plan(5, 1) != plan(5, 2)
    assert plan(5, 1) != plan(6, 1)
    unshuffled = TokenBatcher(data, 300, shuffle=False)
    assert [b.tolist() for b in unshuffled.plan(0)] == [b.tolist() for b in unshuffled.plan(4)]


def test_exact_resume_from_next_position():
    data, _, _ = random_data(n=200)
    batcher = TokenBatcher(data, 500, seed=9)
    n0 = batcher.num_batches(0)
    stream = batcher.iterate()
    run = [next(stream) for _ in range(n0 + 5)]  # crosses into epoch 1
    for k in (0, 3, n0 - 1, n0 + 2):
        resumed = TokenBatcher(data, 500, seed=9).iterate(run[k].next_position)
        for expected in run[k + 1 :]:
            got = next(resumed)
            assert (got.epoch, got.index) == (expected.epoch, expected.index)
            assert torch.equal(got.src, expected.src) and torch.equal(got.tgt_in, expected.tgt_in)
    assert run[n0 - 1].next_position == (1, 0) and run[n0].epoch == 1
    with pytest.raises(DataError, match="out of range"):
        next(batcher.epoch(0, start=n0 + 1))


def test_padding_report_matches_tensors():
    data, _, _ = random_data()
    for batcher in (TokenBatcher(data, 700, seed=2), FixedSizeBatcher(data, 16, seed=2)):
        stats = batcher.padding(1)
        batches = list(batcher.epoch(1))
        src_pad = sum(int(b.src.eq(PAD).sum()) for b in batches)
        tgt_pad = sum(int(b.tgt_out.eq(PAD).sum()) for b in batches)
        src_all = sum(b.src.numel() for b in batches)
        tgt_all = sum(b.tgt_out.numel() for b in batches)
        assert stats.src_fraction == pytest.approx(src_pad / src_all)
        assert stats.tgt_fraction == pytest.approx(tgt_pad / tgt_all)
        assert stats.fraction == pytest.approx((src_pad + tgt_pad) / (src_all + tgt_all))
        assert stats.n_batches == len(batches) and stats.n_pairs == len(data)
        assert batches[0].padding_fraction == pytest.approx(
            (int(batches[0].src.eq(PAD).sum()) + int(batches[0].tgt_out.eq(PAD).sum()))
            / (batches[0].src.numel() + batches[0].tgt_out.numel())
        )


def test_bucketing_pads_less_than_fixed_size_on_multi30k():
    root = corpus_dir("multi30k").parent
    corpus = load_multi30k("val", "de", "en", data_dir=root, download_missing=False)

    class Words:  # stand-in tokenizer: one id per word
        def encode(self, text):
            return [4 + len(w) for w in text.split()]

    data = encode_parallel(corpus, Words(), progress=False)
    bucketed = TokenBatcher(data, 1000, seed=0)
    fixed = FixedSizeBatcher(data, round(bucketed.padding().mean_batch_size), seed=0)
    assert bucketed.padding().fraction < 0.5 * fixed.padding().fraction
    assert bucketed.padding().fraction < 0.1


def test_limits_and_bad_arguments():
    data = make_data([[5] * 30, [6] * 3], [[7] * 2, [8] * 4])
    with pytest.raises(DataError, match=r"pair 0 \(line 1\) needs 30 positions"):
        TokenBatcher(data, 20)
    batcher = TokenBatcher(data, 100, max_sentences=1)
    assert [len(b) for b in batcher.plan(0)] == [1, 1]
    for bad in ({"max_tokens": 0}, {"max_tokens": 100, "max_sentences": 0}):
        with pytest.raises(DataError):
            TokenBatcher(data, **bad)
    with pytest.raises(DataError, match="batch_size"):
        FixedSizeBatcher(data, 0)
    with pytest.raises(DataError, match="epoch"):
        batcher.plan(-1)
    with pytest.raises(DataError, match="epoch"):
        batcher.plan(1.0)
    with pytest.raises(DataError, match="2 sources but 1 targets"):
        EncodedParallel.from_lists([[4], [5]], [[6]])
    # Positions read back from a checkpoint may be NumPy integers.
    first = next(batcher.iterate((np.int64(0), np.int64(1))))
    assert (first.epoch, first.index) == (0, 1)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=60),
    max_tokens=st.integers(31, 400),
    pool_size=st.integers(1, 80),
    max_sentences=st.one_of(st.none(), st.integers(1, 10)),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_partition_and_budget(lengths, max_tokens, pool_size, max_sentences, seed):
    data = make_data([[5] * s for s, _ in lengths], [[6] * t for _, t in lengths])
    batcher = TokenBatcher(
        data, max_tokens, pool_size=pool_size, max_sentences=max_sentences, seed=seed
    )
    plan = batcher.plan(seed % 3)
    assert sorted(i for b in plan for i in b.tolist()) == list(range(len(lengths)))
    for b in plan:
        assert len(b) >= 1 and (max_sentences is None or len(b) <= max_sentences)
        assert len(b) * max(lengths[i][0] for i in b) <= max_tokens
        assert len(b) * (max(lengths[i][1] for i in b) + 1) <= max_tokens
