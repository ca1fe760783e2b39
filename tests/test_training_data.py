"""The trainer's data: copy-task batches, the data record in the log, bf16 autocast on CPU
(and which `train.amp` uses it where), which leftover tokenizer a fresh start keeps,
and (slow) a few steps on the real Multi30k corpus with a freshly trained BPE."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch

from conftest import corpus_dir
from copy_runs import small
from transformer import runtime
from transformer.tokenizers import BPE
from transformer.training import trainer
from transformer.training.config import RunConfig
from transformer.training.copy_task import EOS
from transformer.training.data import build_data
from transformer.training.logging import read_log
from transformer.training.run import prepare_run_dir, train

pytestmark = pytest.mark.usefixtures("one_thread")


def four_steps(*overrides: str) -> RunConfig:
    """The copy-task run of `copy_runs`, 4 steps, validated and saved every 2."""
    return small("train.max_steps=4", "train.val_every=2", "train.save_every=2", *overrides)


def test_copy_batches_follow_the_pipeline_layout(tmp_path) -> None:
    run = four_steps()
    data, model_cfg = build_data(run, tmp_path)
    assert model_cfg == run.model
    for batch in data.train.epoch(0):
        assert batch.src.numel() <= 48 and batch.tgt_out.numel() <= 48
        for src, tgt_in, tgt_out in zip(
            batch.src.tolist(), batch.tgt_in.tolist(), batch.tgt_out.tolist()
        ):
            seq = [t for t in tgt_out if t != 0][:-1]
            assert [s for s in src if s != 0] == [*seq, EOS]  # the source ends with </s>
            assert [t for t in tgt_in if t != 0] == [1, *seq]
            assert [t for t in tgt_out if t != 0] == [*seq, EOS]


def test_log_starts_with_the_data_record(tmp_path) -> None:
    train(four_steps(), tmp_path, tensorboard=False)
    record = read_log(tmp_path, "data")[0]
    assert record["train_pairs"] == 60 and record["val_pairs"] == 8
    assert record["skipped_empty"] == 0 and 0.0 <= record["padding"] < 1.0


def test_bf16_autocast_runs_on_cpu(tmp_path) -> None:
    """The GPU path's autocast (bf16) exercised on the CPU: the loop runs, losses are finite."""
    run = four_steps("train.amp='bf16'")
    result = train(run, tmp_path, tensorboard=False)
    assert result.status == "finished"
    assert all(math.isfinite(r["loss"]) for r in read_log(tmp_path, "train"))


@pytest.mark.parametrize("native", [False, True])
def test_forced_bf16_warns_where_the_cpu_lacks_it(tmp_path, monkeypatch, caplog, native) -> None:
    """train.amp = 'bf16' on a CPU without bf16 in hardware (emulated: ~28x slower) says so."""
    monkeypatch.setattr(trainer, "native_bf16", lambda device: native)
    run = four_steps("train.amp='bf16'", "train.max_steps=2")
    with caplog.at_level(logging.WARNING, logger="transformer.training"):
        train(run, tmp_path, tensorboard=False)
    assert ("no bf16 in hardware" in caplog.text) == (not native)


@pytest.mark.parametrize("native", [False, True])
def test_amp_setting_resolves_per_device(monkeypatch, native) -> None:
    """'bf16' always, 'off' never, 'auto' on CUDA only, 'native' where the hardware has bf16."""
    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    for device in (torch.device("cpu"), torch.device("cuda")):
        expected = {"bf16": True, "off": False, "auto": device.type == "cuda", "native": native}
        for amp, want in expected.items():
            assert runtime.use_bf16_autocast(amp, device) is want, (amp, device)


def test_native_bf16_on_this_cpu_matches_its_flags() -> None:
    """Against the kernel's own list of CPU features (Linux x86 only)."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    flag_lines = [line for line in text.splitlines() if line.startswith("flags")]
    if not flag_lines:
        pytest.skip("no x86 CPU flags in /proc/cpuinfo on this machine")
    flags = set(flag_lines[0].split(":", 1)[1].split())
    expected = "avx512_bf16" in flags or "amx_tile" in flags
    assert runtime.native_bf16(torch.device("cpu")) is expected


@pytest.mark.parametrize("saved_merges", [None, 300, 500])
def test_fresh_start_keeps_a_tokenizer_only_for_the_same_data(tmp_path, saved_merges) -> None:
    """A leftover tokenizer.json is reused by a fresh start only when the directory's
    config.toml has the same [data] (here: bpe_merges 300); else it is removed, to be relearnt."""
    run = RunConfig.from_toml("configs/multi30k-de-en.toml", ["data.bpe_merges=300"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "tokenizer.json").write_text("{}", encoding="utf-8")
    if saved_merges is not None:
        config, merges = "configs/multi30k-de-en.toml", f"data.bpe_merges={saved_merges}"
        saved = RunConfig.from_toml(config, [merges])
        (run_dir / "config.toml").write_text(saved.to_toml(), encoding="utf-8")
    prepare_run_dir(run, run_dir, resume=False)
    assert (run_dir / "tokenizer.json").exists() == (saved_merges == 300)


@pytest.mark.parametrize("edited", [False, True])
def test_fresh_start_recopies_a_given_tokenizer_edited_since(tmp_path, edited) -> None:
    """With `data.tokenizer` set, the leftover copy is kept only while it equals that file:
    a tokenizer edited in place under the same path (same [data]) is copied again."""
    given = tmp_path / "given.json"
    given.write_text('{"merges": 1}', encoding="utf-8")
    run = RunConfig.from_toml("configs/multi30k-de-en.toml", [f"data.tokenizer={str(given)!r}"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(run.to_toml(), encoding="utf-8")
    (run_dir / "tokenizer.json").write_text('{"merges": 1}', encoding="utf-8")
    if edited:
        given.write_text('{"merges": 2}', encoding="utf-8")
    prepare_run_dir(run, run_dir, resume=False)
    assert (run_dir / "tokenizer.json").exists() == (not edited)


@pytest.mark.slow
def test_multi30k_trains_a_few_steps_with_its_own_bpe(tmp_path) -> None:
    root = corpus_dir("multi30k").parent
    run = RunConfig.from_toml(
        "configs/multi30k-de-en.toml",
        [
            f"data.data_dir={str(root)!r}",
            "data.bpe_merges=300",
            "model.d_model=32",
            "model.d_ff=64",
            "model.n_heads=2",
            "model.n_encoder_layers=1",
            "model.n_decoder_layers=1",
            "train.max_steps=2",
            "train.warmup=1",
            "train.progress=false",
            "train.threads=1",
        ],
    )
    result = train(run, tmp_path / "run", tensorboard=False)
    assert result.status == "finished" and math.isfinite(result.val["val_loss"])
    bpe = BPE.load(tmp_path / "run" / "tokenizer.json")
    saved = RunConfig.from_toml(tmp_path / "run" / "config.toml")
    assert saved.model.src_vocab_size == saved.model.tgt_vocab_size == bpe.vocab_size
    assert read_log(tmp_path / "run", "data")[0]["train_pairs"] > 28000
    assert list((tmp_path / "run" / "cache").glob("parallel-*.npz"))
