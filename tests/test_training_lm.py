"""GPT training (data.task = "lm"): AdamW's decoupled decay on the chosen groups against its
closed form, the cosine schedule against its formula, the config checks, and an LM run that
resumes bit-exactly and opens as a GPT run directory."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch

from lm_runs import TEXT, lm_config
from transformer.config import ConfigError, ModelConfig
from transformer.models import GPT
from transformer.rundir import RunDir
from transformer.tokenizers import CharTokenizer
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.data import build_data
from transformer.training.logging import read_log
from transformer.training.optim import build_adamw, decay_groups
from transformer.training.run import train
from transformer.training.schedule import cosine_lr
from transformer.training.trainer import Trainer


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def tiny_gpt(**kw) -> GPT:
    cfg = ModelConfig.preset("tiny", tgt_vocab_size=11, src_vocab_size=11, d_model=8, n_heads=2,
                             d_ff=16, n_decoder_layers=1, max_len=6, **kw)  # fmt: skip
    return GPT(cfg)


@pytest.mark.parametrize(
    "kw", [dict(positional="learned", norm_first=True), dict(tie_output=False)]
)
def test_decay_groups(kw):
    model = tiny_gpt(**kw)
    decay, no_decay = decay_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay)
    linear_weights = sorted(
        f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    )
    assert decayed == linear_weights and all(names[id(p)].endswith("weight") for p in decay)
    kept = {names[id(p)] for p in no_decay}
    assert "embed.weight" in kept and all(not n.endswith("proj.weight") for n in kept)
    assert ("pos.table" in kept) == (kw.get("positional") == "learned")
    assert len(decay) + len(no_decay) == len(list(model.parameters()))


def test_adamw_matches_its_closed_form():
    """Two AdamW steps by hand (Loshchilov & Hutter, Algorithm 2): p <- p - lr·(m̂/(√v̂+ε) +
    wd·p) with wd on the linear weights only."""
    model = tiny_gpt(dropout=0.0)
    lr, wd, (b1, b2), eps = 0.01, 0.3, (0.9, 0.99), 1e-8
    opt = build_adamw(model, (b1, b2), eps, wd)
    for group in opt.param_groups:
        group["lr"] = lr
    decayed = {id(p) for p in decay_groups(model)[0]}
    params = list(model.parameters())
    ref = [p.detach().clone().double() for p in params]
    m = [torch.zeros_like(r) for r in ref]
    v = [torch.zeros_like(r) for r in ref]
    idx = torch.randint(0, 11, (3, 6))
    for t in (1, 2):
        opt.zero_grad()
        model(idx).logsumexp(-1).mean().backward()
        for i, p in enumerate(params):
            g = p.grad.double()
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            step = (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
            ref[i] = ref[i] - lr * (wd * ref[i] if id(p) in decayed else 0) - lr * step
        opt.step()
        for p, r in zip(params, ref):
            torch.testing.assert_close(p.detach().double(), r, rtol=1e-5, atol=1e-7)


def test_cosine_schedule_formula():
    peak, floor, warmup, total = 1e-3, 1e-4, 10, 110
    assert cosine_lr(1, peak, floor, warmup, total) == pytest.approx(1e-4)
    assert cosine_lr(5, peak, floor, warmup, total) == pytest.approx(5e-4)
    assert cosine_lr(10, peak, floor, warmup, total) == pytest.approx(peak)
    assert cosine_lr(60, peak, floor, warmup, total) == pytest.approx((peak + floor) / 2)
    quarter = floor + (peak - floor) * (1 + math.cos(math.pi / 4)) / 2
    assert cosine_lr(35, peak, floor, warmup, total) == pytest.approx(quarter)
    assert cosine_lr(110, peak, floor, warmup, total) == pytest.approx(floor)
    assert cosine_lr(500, peak, floor, warmup, total) == pytest.approx(floor)
    assert cosine_lr(1, peak, floor, 0, total) == pytest.approx(peak, rel=1e-3)
    with pytest.raises(ValueError, match="0 <= warmup < total"):
        cosine_lr(1, peak, floor, 10, 10)


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.optimizer='adam'", "weight_decay is decoupled"),
        ("train.optimizer='sgd'", "train.optimizer must be one of"),
        ("train.max_steps=3", "must exceed train.warmup"),
        ("train.min_lr=0.01", "min_lr in"),
        ("train.lr=0", "lr must be > 0"),
        ("data.tokenizer_kind='bpe'", "data.tokenizer_kind must be one of"),
        ("data.block_size=0", "data.block_size must be a positive integer"),
    ],
)
def test_config_errors(text_file, override, message):
    with pytest.raises(ConfigError, match=message):
        lm_config(text_file, override)


def test_block_size_beyond_positions_is_an_error(tmp_path, text_file):
    with pytest.raises(ConfigError, match=r"model.max_len \(16\) must be >= data.block_size"):
        train(lm_config(text_file, "data.block_size=32"), tmp_path / "r", tensorboard=False)


def test_lm_exact_resume_is_bit_identical(tmp_path, text_file):
    """Stopped by Ctrl-C at step 7 (the cosine depends on max_steps, so the stopped run has
    the same config), then resumed: the weights equal the uninterrupted run's bit for bit."""
    run = lm_config(text_file)
    straight = train(run, tmp_path / "a", tensorboard=False)
    assert straight.status == "finished" and straight.step == 14
    (tmp_path / "b").mkdir()
    data, model_cfg = build_data(run, tmp_path / "b")
    torch.manual_seed(run.train.seed)
    model = GPT(model_cfg)
    calls = {"n": 0}

    def interrupt_on_seventh(module, args):
        if module.training:
            calls["n"] += 1
            if calls["n"] == 7:
                os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C

    model.register_forward_pre_hook(interrupt_on_seventh)
    run_b = RunConfig(model_cfg, run.data, run.train)
    (tmp_path / "b" / "config.toml").write_text(run_b.to_toml())
    half = Trainer(run_b, tmp_path / "b", data, model, tensorboard=False).fit()
    assert half.status == "interrupted" and half.step == 7
    resumed = train(run, tmp_path / "b", resume=True, tensorboard=False)
    assert resumed.step == 14
    a = ckpt.load_weights(tmp_path / "a" / "model.safetensors")
    b = ckpt.load_weights(tmp_path / "b" / "model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    data = next(iter(read_log(tmp_path / "a", "data")))
    assert data["train_tokens"] == int(len(TEXT) * 0.9) and data["block_size"] == 16
    assert data["batches_per_epoch"] < 14  # the runs cross an epoch boundary
    lrs = [r["lr"] for r in read_log(tmp_path / "a", "train")]
    assert lrs[-1] == pytest.approx(cosine_lr(14, 3e-3, 3e-4, 3, 14))


def test_lm_run_directory_opens_as_gpt(tmp_path, text_file):
    train(lm_config(text_file, "train.max_steps=4"), tmp_path / "r", tensorboard=False)
    run = RunDir.open(tmp_path / "r")
    assert run.is_lm and isinstance(run.tokenizer, CharTokenizer)
    assert run.tokenizer.chars == sorted(set(TEXT))
    model = run.load_model(average=2)
    assert isinstance(model, GPT) and not model.training
    assert model.config.tgt_vocab_size == len(set(TEXT))
    val = next(iter(read_log(tmp_path / "r", "val")))
    assert val["val_loss"] == pytest.approx(val["val_nll"])  # no label smoothing


SHRINK = [
    "model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.n_decoder_layers=1",
    "model.max_len=16", "data.block_size=16", "data.batch_size=4", "train.max_steps=3",
    "train.warmup=1", "train.val_every=3", "train.progress=false", "train.threads=1",
]  # fmt: skip


@pytest.mark.parametrize("name", ["shakespeare-char", "shakespeare-bpe"])
def test_shakespeare_configs_train_through_the_cli(tmp_path, text_file, capsys, name):
    from transformer.cli import main
    from transformer.tokenizers import ByteBPE

    run = RunConfig.from_toml(f"configs/{name}.toml")
    assert run.data.task == "lm" and run.train.max_minutes == 20
    assert run.model.max_len == run.data.block_size and run.train.optimizer == "adamw"
    assert run.train.schedule == "cosine" and run.model.norm_first and run.model.dropout < 0.5
    sets = [f"data.text_file={str(text_file)!r}", "data.bpe_merges=40", *SHRINK]
    args = [x for s in sets for x in ("--set", s)]
    assert main(["train", f"configs/{name}.toml", "--out", str(tmp_path / "r"), *args]) == 0
    assert "training finished at step 3" in capsys.readouterr().out
    assert (tmp_path / "r" / "tb").is_dir()  # TensorBoard scalars, as for translation
    tok = RunDir.open(tmp_path / "r").tokenizer
    assert isinstance(tok, CharTokenizer if name.endswith("char") else ByteBPE)
    if isinstance(tok, ByteBPE):
        assert tok.vocab_size == 256 + 40 + 1
    assert main(["evaluate", str(tmp_path / "r"), "--json"]) == 0
    assert "val_bits_per_char" in capsys.readouterr().out
