"""`transformer plot positional|model` and `transformer bench model`: outputs checked against
independent values (PNG header/size, instantiated parameter counts, torch's FLOP counter)."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from benchmarks import model as bench_model
from transformer.cli import main
from transformer.config import ModelConfig
from transformer.models import Transformer, count_parameters


def test_plot_positional_writes_png(tmp_path, capsys):
    out = tmp_path / "pe.png"
    assert main(["plot", "positional", "--out", str(out), "--dim", "16", "--positions", "10"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert "10 positions" in capsys.readouterr().out


def test_plot_model_tree_counts(capsys):
    assert main(["plot", "model", "--preset", "tiny", "--set", "model.n_encoder_layers=3"]) == 0
    out = capsys.readouterr().out
    cfg = ModelConfig.preset("tiny", n_encoder_layers=3)
    total = count_parameters(Transformer(cfg))
    d, f = cfg.d_model, cfg.d_ff
    ffn = d * f + f + f * d + d  # two Linear layers with biases
    assert out.splitlines()[0] == f"Transformer  {total:,} parameters"
    assert "encoder_layers  3 × EncoderLayer" in out
    assert f"ffn  FeedForward  {ffn:,}" in out
    assert "tgt_embed  = src_embed (shared)" in out


def test_plot_model_bad_field_is_a_user_error(capsys):
    assert main(["plot", "model", "--set", "model.colour=1"]) == 2
    assert "colour" in capsys.readouterr().err


def test_bench_params_prints_table3(capsys):
    assert main(["bench", "model", "--params"]) == 0
    out = capsys.readouterr().out
    assert "base" in out and "63.08" in out and "(C) N=2" in out


@pytest.mark.slow  # FlopCounterMode's first use imports for seconds
def test_training_flops_equal_torch_flop_counter():
    """3 x the forward FLOPs that torch.utils.flop_counter counts (need_weights=True makes the
    attention products plain matmuls, which it counts), on padded shapes."""
    cfg = ModelConfig.preset("tiny", n_encoder_layers=1, n_decoder_layers=2)
    model = Transformer(cfg).eval()
    src = torch.randint(1, 100, (3, 7))
    tgt = torch.randint(1, 100, (3, 5))
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(src, tgt, need_weights=True)
    assert bench_model.training_flops(cfg, 3, 7, 5) == 3 * counter.get_total_flops()


def test_training_flops_equal_measured_shapes():
    """Fast variant: 2·in·out per token for every nn.Linear actually called (forward hooks),
    2·D·V per target token for the output layer, 2·(Dk+Dv) per returned attention weight."""
    cfg = ModelConfig.preset("tiny", n_encoder_layers=2, n_decoder_layers=1, d_k=16, d_v=24)
    model = Transformer(cfg).eval()
    flops = []

    def hook(module, inputs, output):
        flops.append(2 * module.in_features * module.out_features * inputs[0][..., 0].numel())

    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.register_forward_hook(hook)
    src, tgt = torch.randint(1, 100, (2, 6)), torch.randint(1, 100, (2, 4))
    with torch.no_grad():
        logits, weights = model(src, tgt, need_weights=True)
    flops.append(2 * cfg.d_model * logits.numel())
    for w in weights.encoder + weights.decoder + weights.cross:
        flops.append(2 * w.numel() * (cfg.head_dim_k + cfg.head_dim_v))
    assert bench_model.training_flops(cfg, 2, 6, 4) == 3 * sum(flops)


def test_bench_step_runs_and_reports():
    args = argparse.Namespace(dropout=None, seed=0, warmup=0, repeats=1)
    row = bench_model.bench_size("tiny", args)
    assert row["params"][0] == row["params"][1]  # equally sized models
    assert row["tokens"] > 0 and all(t > 0 for t in row["tok_s"])


def test_bench_bad_arguments_are_user_errors(capsys):
    assert main(["bench", "model", "--repeats", "0"]) == 2
    assert main(["bench", "model", "--sizes", "huge"]) == 2
    err = capsys.readouterr().err
    assert "--repeats must be >= 1" in err and "unknown size 'huge'" in err
