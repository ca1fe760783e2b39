"""Copy-task runs for the trainer tests, trained in well under a second: a one-layer
Transformer (d_model 16) learning to copy sequences of 2-5 symbols, 16 steps by default."""

from __future__ import annotations

from pathlib import Path

import torch

from transformer.config import apply_overrides
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig

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
        "dropout": 0.1,
        "max_len": 32,
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
        "label_smoothing": 0.1,
        "max_steps": 16,
        "warmup": 4,
        "log_every": 2,
        "val_every": 4,
        "save_every": 3,
        "keep_last": 2,
        "progress": False,
        "threads": 1,
    },
}


def small(*overrides: str) -> RunConfig:
    return RunConfig.from_dict(apply_overrides(SMALL, list(overrides)))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_weights(run_dir / "model.safetensors")


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"
