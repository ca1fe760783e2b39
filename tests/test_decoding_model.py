"""Greedy and beam search on a real (small, random) Transformer: the model's KV cache gives the
tokens and scores of full recomputation, a sentence decodes the same alone and in a batch, beam
1 is greedy, and greedy agrees with a one-sentence reference loop."""

from __future__ import annotations

import pytest
import torch

from transformer.config import ModelConfig
from transformer.decoding import SpecialIds, beam_search, greedy_decode


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run faster on one thread, and much faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


IDS = SpecialIds(bos=1, eos=2, pad=0)
VOCAB = 12  # small, so that a random model emits </s> now and then


@pytest.fixture(scope="module")
def model():
    from transformer.models import Transformer

    torch.manual_seed(5)  # a seed whose sentences partly end in </s>, partly at the limit
    cfg = ModelConfig.preset(
        "tiny",
        src_vocab_size=VOCAB,
        tgt_vocab_size=VOCAB,
        d_model=32,
        d_ff=64,
        n_heads=4,
        dropout=0.0,
        share_embeddings=False,
        tie_output=False,
    )  # untied: a tied random model echoes its input
    return Transformer(cfg).eval()


@pytest.fixture(scope="module")
def src():
    gen = torch.Generator().manual_seed(7)
    lengths = [6, 3, 9, 1, 5]
    out = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, n in enumerate(lengths):
        out[row, :n] = torch.randint(3, VOCAB, (n,), generator=gen)
    return out


def tokens(hyps):
    return [h.tokens for h in hyps]


def test_greedy_matches_reference_loop(model, src):
    hyps = greedy_decode(model, src, IDS, max_len_offset=6)
    for row, hyp in enumerate(hyps):
        one = src[row : row + 1, : int(src[row].ne(0).sum())]
        memory = model.encode(one)
        prefix, total = [IDS.bos], 0.0
        while len(prefix) - 1 < one.size(1) + 6 and prefix[-1] != IDS.eos:
            with torch.no_grad():
                logp = model.decode(torch.tensor([prefix]), memory, one.eq(0))[0, -1]
            logp = logp.log_softmax(-1)
            logp[[IDS.pad, IDS.bos]] = float("-inf")  # never generated
            prefix.append(int(logp.argmax()))
            total += float(logp[prefix[-1]])
        assert hyp.tokens == prefix[1:]
        assert hyp.logprob == pytest.approx(total, abs=1e-4)
    assert any(h.finished for h in hyps) and any(not h.finished for h in hyps)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_without_scores_same_tokens(model, src, use_cache):
    scored = greedy_decode(model, src, IDS, max_len_offset=6, use_cache=use_cache)
    plain = greedy_decode(model, src, IDS, max_len_offset=6, use_cache=use_cache, with_scores=False)
    assert tokens(plain) == tokens(scored)
    assert all(h.logprob != h.logprob for h in plain)  # NaN: not computed


def test_greedy_cached_equals_uncached(model, src):
    cached = greedy_decode(model, src, IDS, max_len_offset=6)
    uncached = greedy_decode(model, src, IDS, max_len_offset=6, use_cache=False)
    assert tokens(cached) == tokens(uncached)
    assert [h.logprob for h in cached] == pytest.approx([h.logprob for h in uncached], abs=1e-4)


@pytest.mark.parametrize("exact", [False, True])
def test_beam_cached_equals_uncached_and_batch_invariant(model, src, exact):
    kw = dict(beam_size=4, alpha=0.6, n_best=3, max_len_offset=5, exact=exact)
    cached = beam_search(model, src, IDS, **kw)
    uncached = beam_search(model, src, IDS, use_cache=False, **kw)
    for row, (a, b) in enumerate(zip(cached, uncached, strict=True)):
        alone = beam_search(model, src[row : row + 1, : int(src[row].ne(0).sum())], IDS, **kw)[0]
        assert tokens(a) == tokens(b) == tokens(alone)
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)
        assert [h.score for h in a] == pytest.approx([h.score for h in alone], abs=1e-4)


def test_greedy_batch_invariant(model, src):
    batched = greedy_decode(model, src, IDS, max_len_offset=6)
    for row, hyp in enumerate(batched):
        alone = greedy_decode(model, src[row : row + 1], IDS, max_len_offset=6)[0]
        assert hyp.tokens == alone.tokens
        assert hyp.logprob == pytest.approx(alone.logprob, abs=1e-4)


def test_beam_one_is_greedy(model, src):
    greedy = greedy_decode(model, src, IDS, max_len_offset=6)
    beam = beam_search(model, src, IDS, beam_size=1, alpha=0.6, max_len_offset=6)
    assert tokens(greedy) == [b[0].tokens for b in beam]
    assert [g.logprob for g in greedy] == pytest.approx([b[0].logprob for b in beam], abs=1e-4)


def test_wider_beam_finds_no_worse_model_score(model, src):
    """With exact stopping and alpha=0, K=8 never returns a lower logprob than greedy."""
    greedy = greedy_decode(model, src, IDS, max_len=6)
    beam = beam_search(model, src, IDS, beam_size=8, alpha=0.0, max_len=6, exact=True)
    for g, b in zip(greedy, beam, strict=True):
        assert b[0].logprob >= g.logprob - 1e-5
