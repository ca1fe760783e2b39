"""`transformer bench lm` runs end to end on a tiny config and prints both tables (nanoGPT's
arms where ../shared/peers/nanogpt is present, Hugging Face's where transformers is)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformer.cli import main as cli_main

TINY = """
[model]
d_model = 32
n_heads = 2
d_ff = 128
n_encoder_layers = 0
n_decoder_layers = 2
activation = "gelu"
positional = "learned"
norm_first = true
init_std = 0.02
max_len = 16
label_smoothing = 0.0

[data]
task = "lm"
block_size = 16
batch_size = 4

[train]
optimizer = "adamw"
weight_decay = 0.1
betas = [0.9, 0.99]
schedule = "cosine"
lr = 1e-3
warmup = 10
clip_norm = 1.0
"""


def test_bench_lm_runs_on_a_tiny_config(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY, encoding="utf-8")
    args = [
        "bench",
        "lm",
        "--config",
        str(config),
        "--repeats",
        "1",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--prompt-len",
        "4",
        "--threads",
        "1",
        "--clock",
        "cpu",
    ]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "| ours | " in out and "| ours, KV cache | " in out and "| ours, no cache | " in out
    peer = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "nanogpt"
    if (peer / "model.py").is_file():
        assert "| nanoGPT | " in out and "| nanoGPT generate (no cache) | " in out
    if importlib.util.find_spec("transformers") is not None:
        assert "| HF GPT2LMHeadModel.generate | " in out


def test_bench_lm_errors(tmp_path, capsys):
    assert cli_main(["bench", "lm", "--prompt-len", "500", "--no-train"]) == 2
    assert "--prompt-len" in capsys.readouterr().err
