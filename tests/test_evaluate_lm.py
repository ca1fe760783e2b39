"""`transformer evaluate` on a GPT run: nats/token, perplexity and bits/character over the
whole validation split, against a direct token-by-token computation."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from lm_runs import TEXT, train_lm_run
from transformer.cli import main
from transformer.config import ModelConfig
from transformer.evaluation.lm import stream_nll, window_starts
from transformer.models import GPT
from transformer.rundir import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


def direct_nll(model, ids: list[int], context: int) -> float:
    """Token t (1 .. N-1) given the tokens from the start of its window, one call per token:
    the window of t starts at ((t - 1) // context) · context."""
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            start = (t - 1) // context * context
            logits = model(torch.tensor([ids[start:t]]))[0, -1].double()
            total -= float(F.log_softmax(logits, -1)[ids[t]])
    return total


def test_stream_nll_scores_every_token_once():
    assert window_starts(10, 4) == [0, 4, 8] and window_starts(9, 4) == [0, 4]
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny", tgt_vocab_size=9, src_vocab_size=9, d_model=16, n_heads=2,
                             d_ff=32, n_decoder_layers=1, dropout=0.0, max_len=6)  # fmt: skip
    model = GPT(cfg).eval()
    for n in (2, 7, 13, 25):
        ids = torch.randint(0, 9, (n,)).tolist()
        got = stream_nll(model, ids, context=6, batch_size=2)
        assert got.tokens == n - 1
        assert got.nll == pytest.approx(direct_nll(model, ids, 6), rel=1e-5)


def test_evaluate_an_lm_run(tmp_path, capsys):
    train_lm_run(tmp_path)
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    rd = RunDir.open(tmp_path / "run")
    val_text = TEXT[int(len(TEXT) * 0.9) :]  # nanoGPT's last 10%
    ids = rd.tokenizer.encode(val_text)
    nll = direct_nll(rd.load_model(), ids, 16)
    assert got["val_tokens"] == len(ids) - 1 and got["val_chars"] == len(val_text) - 1
    assert got["val_nats_per_token"] == pytest.approx(nll / (len(ids) - 1), rel=1e-5)
    assert got["val_perplexity"] == pytest.approx(math.exp(nll / (len(ids) - 1)), rel=1e-5)
    assert got["val_bits_per_char"] == pytest.approx(nll / math.log(2) / (len(val_text) - 1))
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert f"{got['val_nats_per_token']:.4f} nats/token" in text and "bits/character" in text
    assert main(["evaluate", str(tmp_path / "run"), "--split", "test"]) == 2
    assert "validation split" in capsys.readouterr().err
