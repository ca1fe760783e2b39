"""BLEU/chrF wrapper vs sacreBLEU's own command line and a from-scratch BLEU; perplexity vs a
per-token loop."""

from __future__ import annotations

import collections
import gzip
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import corpus_dir
from transformer.evaluation import Perplexity, corpus_perplexity, score_translations

SACREBLEU = Path(sys.executable).with_name("sacrebleu")


def perturb(line: str, rng: random.Random) -> str:
    """A plausible imperfect "translation": drop, swap and re-case some words."""
    words = line.split()
    words = [w for w in words if rng.random() > 0.15] or words[:1]
    if len(words) > 3 and rng.random() < 0.5:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(w.upper() if rng.random() < 0.1 else w for w in words)


def run_cli(refs: Path, hyps: Path, *extra: str) -> list[dict]:
    out = subprocess.run(
        [str(SACREBLEU), str(refs), "-i", str(hyps), "-w", "6", "--format", "json", *extra],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    return data if isinstance(data, list) else [data]


def test_matches_sacrebleu_command_line(tmp_path):
    with gzip.open(corpus_dir("multi30k") / "val.en.gz", "rt", encoding="utf-8") as fh:
        refs = [next(fh).rstrip("\n") for _ in range(40)]
    rng = random.Random(1)
    hyps = [perturb(r, rng) for r in refs]
    (tmp_path / "ref").write_text("\n".join(refs) + "\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    bleu, chrf = run_cli(tmp_path / "ref", tmp_path / "hyp", "-m", "bleu", "chrf")
    (bleu_lc,) = run_cli(tmp_path / "ref", tmp_path / "hyp", "-m", "bleu", "-lc")
    ours = score_translations(hyps, refs)
    assert ours.bleu == pytest.approx(bleu["score"], abs=1e-4)
    assert ours.bleu_signature == bleu["signature"]
    assert ours.chrf == pytest.approx(chrf["score"], abs=1e-4)
    assert ours.chrf_signature == chrf["signature"]
    assert ours.bleu_lc == pytest.approx(bleu_lc["score"], abs=1e-4)
    assert ours.bleu_lc_signature == bleu_lc["signature"]
    assert "case:lc" in ours.bleu_lc_signature and ours.bleu_lc > ours.bleu


def reference_bleu(hyps: list[list[str]], refs: list[list[str]]) -> float:
    """Papineni et al. (2002): clipped n-gram precisions 1..4, geometric mean, brevity penalty."""
    match, total = [0] * 4, [0] * 4
    for h, r in zip(hyps, refs, strict=True):
        for n in range(1, 5):
            hc = collections.Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            rc = collections.Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            match[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    hyp_len, ref_len = sum(map(len, hyps)), sum(map(len, refs))
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * brevity * math.exp(sum(math.log(m / t) for m, t in zip(match, total)) / 4)


def test_lowercased_bleu_matches_from_scratch_bleu():
    """On lowercase text made of plain words 13a tokenization is whitespace splitting."""
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(12)]
    refs = [[rng.choice(vocab) for _ in range(rng.randint(6, 14))] for _ in range(30)]
    hyps = [[w if rng.random() < 0.8 else rng.choice(vocab) for w in r][: len(r) - 1] for r in refs]
    ours = score_translations([" ".join(h).upper() for h in hyps], [" ".join(r) for r in refs])
    assert ours.bleu_lc == pytest.approx(reference_bleu(hyps, refs), abs=1e-6)
    assert ours.bleu == 0.0  # cased: upper-case hypotheses match nothing


def test_rejects_mismatched_files():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        score_translations(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no sentences"):
        score_translations([], [])


class FixedLogits(torch.nn.Module):
    """A "model" whose logits are a fixed random table indexed by (src[:, 0], position)."""

    def __init__(self, batch: int, length: int, vocab: int) -> None:
        super().__init__()
        self.table = torch.randn(batch, length, vocab) * 3

    def forward(self, src, tgt_in):
        return self.table[src[:, 0], : tgt_in.size(1)]


def test_perplexity_matches_token_loop():
    pad, vocab = 0, 9
    lengths = [5, 2, 7]
    tgt = torch.zeros(3, 8, dtype=torch.long)
    for row, n in enumerate(lengths):  # <s>=1, y..., </s>=2
        tgt[row, : n + 1] = torch.tensor([1, *torch.randint(3, vocab, (n - 1,)).tolist(), 2])
    model = FixedLogits(3, 7, vocab)
    src = torch.arange(3).unsqueeze(1).repeat(1, 4)  # row ids travel in the source
    nll, count = 0.0, 0
    for row, n in enumerate(lengths):
        for t in range(n):  # predict tgt[row, t + 1] from position t
            logits = model.table[row, t].tolist()
            log_z = math.log(sum(math.exp(v) for v in logits))
            nll += log_z - logits[int(tgt[row, t + 1])]
            count += 1
    halves = [(src[:2], tgt[:2]), (src[2:], tgt[2:])]
    ours = corpus_perplexity(model, halves, pad)
    assert ours.tokens == count == sum(lengths)
    assert ours.nll == pytest.approx(nll, rel=1e-5)
    assert ours.perplexity == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert math.isnan(Perplexity(0.0, 0).perplexity)
