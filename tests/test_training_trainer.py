"""The training loop: exact resume (in-process, Ctrl-C, SIGKILL), gradient accumulation vs a
one-shot reference, NaN handling, logs, run-directory checks."""

from __future__ import annotations

import copy
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from copy_runs import assert_identical, small, weights
from transformer.models import Transformer
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.data import build_data
from transformer.training.logging import read_log
from transformer.training.run import train
from transformer.training.schedule import noam_lr
from transformer.training.trainer import Trainer, TrainingError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


def test_exact_resume_is_bit_identical(tmp_path) -> None:
    straight = train(small(), tmp_path / "a", tensorboard=False)
    assert straight.status == "finished" and straight.step == 16
    half = train(small("train.max_steps=8"), tmp_path / "b", tensorboard=False)
    assert half.step == 8
    resumed = train(small(), tmp_path / "b", resume=True, tensorboard=False)
    assert resumed.step == 16
    data, _ = build_data(small(), tmp_path)
    assert data.train.num_batches(0) < 16  # the runs cross an epoch boundary
    assert_identical(weights(tmp_path / "a"), weights(tmp_path / "b"))
    # the log of the resumed run reads as one run: each train step logged once
    steps = [r["step"] for r in read_log(tmp_path / "b", "train")]
    assert steps == list(range(2, 17, 2))


def test_ctrl_c_saves_and_resumes_exactly(tmp_path) -> None:
    run = small()
    data, model_cfg = build_data(run, tmp_path)
    torch.manual_seed(run.train.seed)
    model = Transformer(model_cfg)
    calls = {"n": 0}

    def interrupt_on_fifth(module, args):
        if module.training:
            calls["n"] += 1
            if calls["n"] == 5:
                os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C

    handle = model.register_forward_pre_hook(interrupt_on_fifth)
    (tmp_path / "b").mkdir()
    result = Trainer(run, tmp_path / "b", data, model, tensorboard=False).fit()
    handle.remove()
    assert result.status == "interrupted" and result.step == 5
    assert [s for s, _ in ckpt.step_dirs(tmp_path / "b")][-1] == 5
    (tmp_path / "b" / "config.toml").write_text(run.to_toml())
    train(run, tmp_path / "b", resume=True, tensorboard=False)
    train(run, tmp_path / "a", tensorboard=False)
    assert_identical(weights(tmp_path / "a"), weights(tmp_path / "b"))


def test_accumulation_normalises_by_the_steps_token_count(tmp_path) -> None:
    run = small("model.dropout=0.0", "train.label_smoothing=0.0", "train.accum_steps=3")
    data, model_cfg = build_data(run, tmp_path)
    model = Transformer(model_cfg)
    reference = copy.deepcopy(model)
    trainer = Trainer(run, tmp_path, data, model, tensorboard=False)
    batches = [trainer._next_batch() for _ in range(3)]
    n_tokens = sum(int(b.tgt_out.ne(0).sum()) for b in batches)
    assert n_tokens == sum(b.n_tgt_tokens for b in batches)
    trainer.accumulate(batches, n_tokens)
    # reference: one loss over all target tokens of the step, plain cross-entropy
    total = sum(
        F.cross_entropy(
            reference(b.src, b.tgt_in).flatten(0, 1),
            b.tgt_out.flatten(),
            ignore_index=0,
            reduction="sum",
        )
        for b in batches
    )
    (total / n_tokens).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path) -> None:
    run = small("train.max_nonfinite_steps=1")  # stop at the first (tests/test_faults.py: skips)
    data, model_cfg = build_data(run, tmp_path)
    model = Transformer(model_cfg)
    calls = {"n": 0}

    def poison_seventh(module, args, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] == 7:
                return output * float("nan")
        return output

    model.register_forward_hook(poison_seventh)
    trainer = Trainer(run, tmp_path, data, model, tensorboard=False)
    with pytest.raises(TrainingError, match=r"loss became nan at step 7") as err:
        trainer.fit()
    assert "step-00000006" in str(err.value)  # names the last good checkpoint
    assert [s for s, _ in ckpt.step_dirs(tmp_path)][-1] == 6
    saved = ckpt.load_weights(tmp_path / "checkpoints" / "step-00000006" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in saved.values())
    assert_identical(saved, {k: v for k, v in model.state_dict().items()})  # not updated
    assert "loss became nan" in read_log(tmp_path, "event")[-1]["message"]


def test_log_and_run_directory(tmp_path) -> None:
    run = small("train.max_steps=8", "train.keep_last=1")
    train(run, tmp_path, tensorboard=True)
    records = read_log(tmp_path, "train")
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    for r in records:
        assert {"loss", "ppl", "lr", "tokens_per_s", "padding"} <= set(r)
        assert r["lr"] == pytest.approx(noam_lr(r["step"], 16, 4))
        assert r["ppl"] == pytest.approx(math.exp(r["nll"]))
        assert 0.0 <= r["padding"] < 1.0 and r["tokens_per_s"] > 0
    vals = read_log(tmp_path, "val")
    assert [v["step"] for v in vals] == [4, 8] and all("val_ppl" in v for v in vals)
    best = ckpt.best_step(tmp_path)
    assert best in (4, 8)  # a validation step, saved even though save_every = 3
    kept = [s for s, _ in ckpt.step_dirs(tmp_path)]
    assert kept == sorted({8, best})
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert RunConfig.from_toml(tmp_path / "config.toml") == run
    with pytest.raises(TrainingError, match="already holds a run"):
        train(run, tmp_path, tensorboard=False)
    with pytest.raises(TrainingError, match="no checkpoint to resume"):
        train(run, tmp_path / "empty", resume=True, tensorboard=False)
    with pytest.raises(TrainingError, match=r"\[data\] config differs"):
        train(small("data.copy_max_len=6"), tmp_path, resume=True, tensorboard=False)


@pytest.mark.slow
def test_sigkill_between_checkpoints_then_resume_is_bit_identical(tmp_path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(small().to_toml())
    cmd = [sys.executable, "-m", "transformer", "train", str(config)]
    slow = ["--set", "train.max_steps=100000", "--set", "train.save_every=4"]
    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "b"), *slow],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(s >= 12 for s, _ in ckpt.step_dirs(tmp_path / "b")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05)  # somewhere between two checkpoints (or inside a save)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = ckpt.step_dirs(tmp_path / "b")[-1][0]
    target = ["--set", f"train.max_steps={last + 10}", "--set", "train.save_every=4"]
    subprocess.run(
        [*cmd, "--out", str(tmp_path / "b"), "--resume", *target], check=True, capture_output=True
    )
    subprocess.run([*cmd, "--out", str(tmp_path / "a"), *target], check=True, capture_output=True)
    assert_identical(weights(tmp_path / "a"), weights(tmp_path / "b"))


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_gradient_clipping_is_optional(tmp_path, clip: float) -> None:
    run = small(f"train.clip_norm={clip}")
    data, model_cfg = build_data(run, tmp_path)
    trainer = Trainer(run, tmp_path, data, Transformer(model_cfg), tensorboard=False)
    norms = []
    step = trainer.optimizer.step

    def record_then_step(*args, **kwargs):
        grads = [p.grad.double().norm() for p in trainer.model.parameters() if p.grad is not None]
        norms.append(float(torch.stack(grads).norm()))
        return step(*args, **kwargs)

    trainer.optimizer.step = record_then_step
    for _ in range(3):
        trainer.train_step()
    if clip:
        assert all(n <= clip * (1 + 1e-4) for n in norms)
    else:
        assert all(n > 0.05 for n in norms)  # unclipped gradients are larger here
