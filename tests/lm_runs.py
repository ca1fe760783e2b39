"""Language-model run directories for the GPT tests, trained in well under a second: a few
lines of Tiny Shakespeare's opening, a character vocabulary and a one-layer GPT."""

from __future__ import annotations

from pathlib import Path

from transformer.config import apply_overrides
from transformer.training.config import RunConfig
from transformer.training.run import train

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
) * 5


def lm_config(text_file: str | Path, *overrides: str) -> RunConfig:
    """A pre-norm GPT (1 layer, d_model 16) on `text_file`, AdamW + cosine, 14 steps."""
    base = {
        "model": {
            "preset": "tiny",
            "n_encoder_layers": 0,
            "n_decoder_layers": 1,
            "d_model": 16,
            "n_heads": 2,
            "d_ff": 32,
            "max_len": 16,
            "norm_first": True,
            "positional": "learned",
            "dropout": 0.1,
        },
        "data": {"task": "lm", "text_file": str(text_file), "block_size": 16, "batch_size": 4},
        "train": {
            "label_smoothing": 0.0,
            "max_steps": 14,
            "warmup": 3,
            "schedule": "cosine",
            "lr": 3e-3,
            "min_lr": 3e-4,
            "optimizer": "adamw",
            "weight_decay": 0.1,
            "betas": [0.9, 0.99],
            "eps": 1e-8,
            "log_every": 2,
            "val_every": 5,
            "save_every": 3,
            "keep_last": 2,
            "progress": False,
            "threads": 1,
        },
    }
    return RunConfig.from_dict(apply_overrides(base, list(overrides)))


def train_lm_run(root: Path, *overrides: str) -> Path:
    """TEXT written to root/text.txt and a 3-step `lm_config` run trained into root/run."""
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    run = lm_config(root / "text.txt", "train.max_steps=3", "train.warmup=1", *overrides)
    train(run, root / "run", tensorboard=False)
    return root / "run"
