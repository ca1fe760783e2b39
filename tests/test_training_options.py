"""Trainer options for the translation recipe: validation BLEU (the sample, its score against
sacreBLEU of one-at-a-time greedy outputs, best checkpoint by it), the time budget and the
linear schedule."""

from __future__ import annotations

import json

import pytest
import torch
from sacrebleu.metrics import BLEU

from copy_runs import SMALL
from transformer.config import ModelConfig
from transformer.decoding import SpecialIds, greedy_decode
from transformer.models import Transformer
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.logging import read_log
from transformer.training.run import train
from transformer.training.val_bleu import BleuProbe, probe_bleu

IDS = SpecialIds(bos=1, eos=2, pad=0)


def _words(ids: list[int]) -> str:
    return " ".join(f"w{i}" for i in ids if i > 2)


def test_sample_is_evenly_spread_and_skips_empty_sources() -> None:
    sources = [[5, i] for i in range(10)]
    sources[4] = []
    refs = [f"r{i}" for i in range(10)]
    probe = BleuProbe.sample(sources, refs, 5, _words, IDS)
    assert probe.references == ["r0", "r2", "r6", "r8"]  # 0, 2, 4 (empty), 6, 8
    everything = BleuProbe.sample(sources, refs, 50, _words, IDS)
    assert len(everything.sources) == 9
    with pytest.raises(ValueError, match="references"):
        BleuProbe.sample(sources, refs[:3], 2, _words, IDS)


def test_probe_bleu_equals_sacrebleu_of_sentence_by_sentence_greedy_outputs() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny", src_vocab_size=20, tgt_vocab_size=20, max_len=40)
    model = Transformer(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    sources = [
        torch.randint(3, 20, (int(n),), generator=gen).tolist()
        for n in torch.randint(1, 9, (13,), generator=gen)
    ]
    # The probe's limits: source length + 50, capped at max_positions - 1 (room for <s>).
    alone = [
        _words(greedy_decode(model, torch.tensor([s]), IDS, max_positions=13)[0].tokens)
        for s in sources
    ]
    # References: half are the model's own outputs, half something else, so BLEU is in (0, 100).
    refs = [out if i % 2 else "w3 w4 w5 w6" for i, out in enumerate(alone)]
    probe = BleuProbe.sample(sources, refs, 13, _words, IDS)
    got = probe_bleu(model, probe, max_positions=14, device=torch.device("cpu"), batch_sentences=4)
    want = BLEU(tokenize="13a").corpus_score(alone, [refs]).score
    assert got == pytest.approx(want, abs=1e-9)
    assert 0.0 < got < 100.0


def test_trainer_logs_val_bleu_and_keeps_the_best_by_it(tmp_path) -> None:
    values = {**SMALL, "train": {**SMALL["train"], "val_bleu": 6, "max_steps": 12}}
    run = RunConfig.from_dict(values)
    train(run, tmp_path, tensorboard=False)
    vals = [r for r in read_log(tmp_path) if r["kind"] == "val"]
    assert [r["step"] for r in vals] == [4, 8, 12]
    assert all(0.0 <= r["val_bleu"] <= 100.0 for r in vals)
    best = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
    top = max(r["val_bleu"] for r in vals)
    assert best["val_bleu"] == top
    assert best["step"] == max(r["step"] for r in vals if r["val_bleu"] == top)
    assert ckpt.best_step(tmp_path) == best["step"]


def test_val_bleu_must_be_a_count() -> None:
    from transformer.config import ConfigError

    with pytest.raises(ConfigError, match=r"train\.val_bleu"):
        RunConfig.from_dict({**SMALL, "train": {**SMALL["train"], "val_bleu": -1}})


def test_max_minutes_stops_validates_and_saves(tmp_path, monkeypatch) -> None:
    """A fake clock advancing 1 s per reading: the 3-second budget ends the run early, with
    the final validation and checkpoint that max_steps would give."""
    from transformer.training import trainer as trainer_module

    ticks = iter(range(10**6))
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: float(next(ticks)))
    values = {**SMALL, "train": {**SMALL["train"], "max_minutes": 0.05, "max_steps": 1000}}
    result = train(RunConfig.from_dict(values), tmp_path, tensorboard=False)
    assert result.status == "time limit"
    assert 1 <= result.step < 1000
    assert result.val is not None and result.val["step"] == result.step
    assert ckpt.step_dirs(tmp_path)[-1][0] == result.step


def test_linear_schedule_in_the_trainer(tmp_path) -> None:
    """The logged rates follow linear_lr (warm-up, then down to 0 at max_steps)."""
    from transformer.training.schedule import linear_lr

    values = {**SMALL, "train": {**SMALL["train"], "schedule": "linear", "max_steps": 12}}
    run = RunConfig.from_dict(values)
    train(run, tmp_path, tensorboard=False)
    logged = {r["step"]: r["lr"] for r in read_log(tmp_path) if r["kind"] == "train"}
    d, t = run.model.d_model, run.train
    assert logged == pytest.approx(
        {s: linear_lr(s, d, t.warmup, t.max_steps, t.lr_scale) for s in logged}
    )
    assert logged[12] == 0.0


@pytest.mark.parametrize(
    ("train_values", "message"),
    [
        ({"schedule": "exponential"}, "train.schedule"),
        ({"schedule": "linear", "max_steps": 4, "warmup": 4}, "must exceed train.warmup"),
        ({"max_minutes": -1}, "train.max_minutes"),
    ],
)
def test_schedule_and_budget_errors_name_the_field(train_values, message) -> None:
    from transformer.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({**SMALL, "train": {**SMALL["train"], **train_values}})
