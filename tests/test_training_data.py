"""The trainer's data: copy-task batches, the data record in the log, bf16 autocast on CPU,
which leftover tokenizer a fresh start keeps,
and (slow) a few steps on the real Multi30k corpus with a freshly trained BPE."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import corpus_dir
from transformer.config import apply_overrides
from transformer.tokenizers import BPE
from transformer.training.config import RunConfig
from transformer.training.copy_task import EOS
from transformer.training.data import build_data
from transformer.training.logging import read_log
from transformer.training.run import prepare_run_dir, train

SMALL = {
    "model": {
        "preset": "tiny",
        "src_vocab_size": 12,
        "tgt_vocab_size": 12,
        "d_model": 16,
        "n_heads": 2,
        "d_ff": 32,
        "n_encoder_layers": 1,
        "n_decoder_layers": 1,
    },
    "data": {
        "task": "copy",
        "copy_min_len": 2,
        "copy_max_len": 5,
        "copy_train_size": 60,
        "copy_val_size": 8,
        "max_tokens": 48,
    },
    "train": {
        "max_steps": 4,
        "warmup": 4,
        "log_every": 2,
        "val_every": 2,
        "save_every": 2,
        "progress": False,
        "threads": 1,
    },
}


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_copy_batches_follow_the_pipeline_layout(tmp_path) -> None:
    run = RunConfig.from_dict(SMALL)
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
    train(RunConfig.from_dict(SMALL), tmp_path, tensorboard=False)
    record = read_log(tmp_path, "data")[0]
    assert record["train_pairs"] == 60 and record["val_pairs"] == 8
    assert record["skipped_empty"] == 0 and 0.0 <= record["padding"] < 1.0


def test_bf16_autocast_runs_on_cpu(tmp_path) -> None:
    """The GPU path's autocast (bf16) exercised on the CPU: the loop runs, losses are finite."""
    run = RunConfig.from_dict(apply_overrides(SMALL, ["train.amp='bf16'"]))
    result = train(run, tmp_path, tensorboard=False)
    assert result.status == "finished"
    assert all(math.isfinite(r["loss"]) for r in read_log(tmp_path, "train"))


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
