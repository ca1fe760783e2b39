"""`transformer train` / `transformer average` / `transformer demo` end to end."""

from __future__ import annotations

import re

import numpy as np
import pytest

from transformer.cli import main
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.copy_task import DEMO_CONFIG

TINY = [
    "--set",
    "model.src_vocab_size=12",
    "--set",
    "model.tgt_vocab_size=12",
    "--set",
    "model.d_model=16",
    "--set",
    "model.n_heads=2",
    "--set",
    "model.d_ff=32",
    "--set",
    "model.n_encoder_layers=1",
    "--set",
    "model.n_decoder_layers=1",
    "--set",
    "data.copy_train_size=40",
    "--set",
    "data.copy_val_size=4",
    "--set",
    "data.copy_max_len=5",
    "--set",
    "data.copy_min_len=2",
    "--set",
    "train.max_steps=6",
    "--set",
    "train.save_every=2",
    "--set",
    "train.keep_last=3",
    "--set",
    "train.val_every=3",
    "--set",
    "train.log_every=3",
    "--set",
    "train.progress=false",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


def test_train_then_average(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "configs/copy-task.toml", "--out", str(out), *TINY]) == 0
    assert "training finished at step 6" in capsys.readouterr().out
    run = RunConfig.from_toml(out / "config.toml")
    assert run.model.d_model == 16 and run.train.max_steps == 6
    assert main(["average", str(out), "--last", "2"]) == 0
    assert "steps 4, 6" in capsys.readouterr().out
    avg = ckpt.load_weights(out / "model-avg-last2.safetensors")
    a, b = (
        ckpt.load_weights(out / "checkpoints" / f"step-0000000{s}" / "model.safetensors")
        for s in (4, 6)
    )
    for name in avg:
        expected = (a[name].double().numpy() + b[name].double().numpy()) / 2
        np.testing.assert_allclose(avg[name].numpy(), expected, rtol=1e-6, atol=1e-7)


def test_user_errors_exit_2_with_a_clear_line(tmp_path, capsys) -> None:
    assert (
        main(
            ["train", "configs/copy-task.toml", "--out", str(tmp_path), "--set", "train.warmup=-1"]
        )
        == 2
    )
    assert re.search(r"copy-task\.toml: train\.warmup must be", capsys.readouterr().err)
    assert main(["train", str(tmp_path / "nope.toml"), "--out", str(tmp_path)]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["average", str(tmp_path), "--last", "5"]) == 2
    assert "no checkpoints found" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_reaches_full_exact_copy_accuracy(capsys) -> None:
    assert main(["demo", "--set", "train.progress=false"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"average of the last \d+ checkpoints .*: 100\.0%", out)
    assert f"trained {DEMO_CONFIG['train']['max_steps']} steps" in out


def test_demo_refuses_an_existing_run(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "configs/copy-task.toml", "--out", str(out), *TINY]) == 0
    assert main(["demo", "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "configs/copy-task.toml", "--out", str(out), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
