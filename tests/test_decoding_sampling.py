"""Top-k / nucleus filtering against sorted-list loops, sampling frequencies against the
probabilities, and cached vs uncached generation on a real GPT."""

from __future__ import annotations

import math

import pytest
import torch

from transformer.config import ModelConfig
from transformer.decoding.sampling import filter_logits, generate, sample_next


def kept_by_loop(row: list[float], top_k, top_p) -> set[int]:
    """The tokens a plain loop keeps: top-k first (ties kept), then the nucleus."""
    keep = set(range(len(row)))
    if top_k is not None:
        kth = sorted(row, reverse=True)[min(top_k, len(row)) - 1]
        keep = {i for i in keep if row[i] >= kth}
    if top_p is not None:
        z = sum(math.exp(row[i]) for i in keep)
        mass, nucleus = 0.0, set()
        for i in sorted(keep, key=lambda i: -row[i]):
            if mass >= top_p:
                break
            nucleus.add(i)
            mass += math.exp(row[i]) / z
        keep = nucleus
    return keep


@pytest.mark.parametrize(
    "top_k,top_p",
    [(3, None), (None, 0.5), (None, 0.9), (5, 0.7), (1, None), (None, 1.0), (50, None)],
)
def test_filter_matches_loop(top_k, top_p):
    logits = torch.randn(6, 20) * 2
    out = filter_logits(logits, top_k, top_p)
    for row in range(6):
        kept = {i for i in range(20) if out[row, i] > float("-inf")}
        assert kept == kept_by_loop(logits[row].tolist(), top_k, top_p)
        assert torch.equal(out[row, list(kept)], logits[row, list(kept)])


def test_sampling_frequencies_follow_probabilities():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(4000, 1)  # 4000 independent draws at once
    gen = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_next(logits, generator=gen), minlength=4).float()
    expected = probs * 4000
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.3  # chi-square, 3 degrees of freedom, p = 0.001
    hot = torch.bincount(sample_next(logits, temperature=0.5, generator=gen), minlength=4)
    sharpened = probs**2 / (probs**2).sum()  # temperature 0.5 squares the probabilities
    chi2 = float(((hot - sharpened * 4000) ** 2 / (sharpened * 4000)).sum())
    assert chi2 < 16.3
    top2 = sample_next(logits, top_k=2, generator=gen)
    assert set(top2.tolist()) == {0, 1}
    assert torch.equal(sample_next(logits[:3], temperature=0), torch.zeros(3, dtype=torch.long))


@pytest.fixture(scope="module")
def gpt():
    from transformer.models import GPT

    torch.manual_seed(1)
    cfg = ModelConfig.preset(
        "tiny",
        tgt_vocab_size=30,
        src_vocab_size=30,
        d_model=32,
        n_heads=4,
        d_ff=64,
        dropout=0.0,
        max_len=40,
    )
    return GPT(cfg).eval()


@pytest.mark.parametrize(
    "kw", [dict(temperature=1.0, top_k=10), dict(temperature=0.8, top_p=0.9), dict(temperature=0.0)]
)
def test_generate_cached_equals_uncached(gpt, kw):
    prompt = torch.randint(3, 30, (3, 4))
    a = generate(gpt, prompt, 12, generator=torch.Generator().manual_seed(5), **kw)
    b = generate(gpt, prompt, 12, use_cache=False, generator=torch.Generator().manual_seed(5), **kw)
    assert a.shape == (3, 16) and torch.equal(a[:, :4], prompt)
    assert torch.equal(a, b)


def test_generate_greedy_is_argmax_loop(gpt):
    prompt = torch.randint(3, 30, (2, 3))
    out = generate(gpt, prompt, 6, temperature=0.0)
    seq = prompt
    for _ in range(6):
        with torch.no_grad():
            seq = torch.cat([seq, gpt(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_generate_stops_at_eos_and_checks_length(gpt):
    prompt = torch.randint(3, 30, (2, 3))
    first = int(generate(gpt, prompt[:1], 1, temperature=0.0)[0, -1])
    out = generate(gpt, prompt[:1], 10, temperature=0.0, eos_id=first)
    assert out.shape == (1, 4)  # stopped right after the first token, which was "</s>"
