"""A tiny masked-LM run config for the BERT tests (data.task = "mlm" on a short text file)."""

from __future__ import annotations

from transformer.config import apply_overrides
from transformer.training.config import RunConfig

LINES = [
    "A man in an orange hat starring at something.",
    "Two dogs play in the snow.",
    "A little girl climbs into a wooden playhouse.",
    "A man is riding a horse on the beach.",
    "Two young men are playing football in a park.",
    "A woman in a red dress is walking down the street.",
    "A dog runs through the grass with a ball.",
    "Several people are sitting at a table in a restaurant.",
    "",
    "A boy jumps into the water from a dock.",
    "The man is cooking food in the kitchen.",
]


def bert_config(text_file, *overrides: str) -> RunConfig:
    base = {
        "model": {
            "d_model": 16, "n_heads": 2, "d_ff": 32, "n_encoder_layers": 1,
            "n_decoder_layers": 0, "activation": "gelu", "positional": "learned",
            "dropout": 0.1, "attention_dropout": 0.1, "layer_norm_eps": 1e-12,
            "max_len": 24, "init_std": 0.02, "label_smoothing": 0.0,
        },
        "data": {"task": "mlm", "text_file": str(text_file), "vocab_size": 120,
                 "max_tokens": 96},
        "train": {
            "max_steps": 12, "warmup": 2, "schedule": "cosine", "lr": 3e-3, "min_lr": 0.0,
            "optimizer": "adamw", "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-6,
            "clip_norm": 1.0, "log_every": 2, "val_every": 5, "save_every": 3, "keep_last": 2,
            "progress": False, "threads": 1,
        },
    }  # fmt: skip
    return RunConfig.from_dict(apply_overrides(base, list(overrides)))


def write_text(path):
    """The text file of the tiny runs: LINES four times (with an empty line each time)."""
    path.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    return path
