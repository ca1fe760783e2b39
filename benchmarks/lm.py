"""`transformer bench lm`: the GPT language model's speed, training and generation, against
its peers in one run (ratios side by side, so a shared machine's load hits every arm alike).

Training: tokens/s of our training step (`Trainer.train_step`: next batch from `LMStream`,
forward, loss, backward, clip, AdamW, as `transformer train` runs it with the fast engine)
against nanoGPT's (`model.py` imported by path from `--nanogpt`, default
../shared/peers/nanogpt beside the repository; its train.py step: `get_batch`, forward with
targets, backward, clip 1.0, `configure_optimizers`' AdamW), on the same model size and batch:
those of `--config` (default configs/shakespeare-char.toml: 4 layers, d_model 192, 6 heads,
d_ff 768, context 128, 32 blocks per batch, the 65-character vocabulary), dropout 0, float32
on both sides (nanoGPT's train.py runs the CPU in float32), or with `--amp native` ours in
bf16 autocast where the CPU computes bf16 in hardware, as the config trains. Each repeat times
`--steps` steps of each arm, the order alternating between repeats; the median step time is
reported.

Generation: tokens/s of `transformer.decoding.generate` on a GPT of the same size (fast
engine) with the KV cache against without it (the window re-run each step), against Hugging
Face `GPT2LMHeadModel.generate()` of the same size (its default cache) and nanoGPT's
`generate` (no cache), all with the same sampling settings (`--temperature`, `--top-k`;
random weights): `--batch` rows from a `--prompt-len` token prompt up to the full context,
turns alternating, medians of `--repeats`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

VOCAB = 65  # Tiny Shakespeare's characters: the vocabulary of the char config
_REPO = Path(__file__).resolve().parents[1]  # benchmarks/ sits at the repository root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=str(_REPO / "configs" / "shakespeare-char.toml"),
        help="the model size and batch (default configs/shakespeare-char.toml)",
    )
    parser.add_argument(
        "--nanogpt",
        default=None,
        metavar="DIR",
        help="nanoGPT's directory (model.py); default ../shared/peers/nanogpt",
    )
    parser.add_argument("--repeats", type=int, default=5, help="median over this many repeats")
    parser.add_argument("--steps", type=int, default=3, help="training steps per arm and repeat")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per arm first")
    parser.add_argument("--batch", type=int, default=1, help="generation: rows (samples)")
    parser.add_argument("--prompt-len", type=int, default=8, help="generation: prompt tokens")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=50, help="0: all tokens")
    parser.add_argument("--no-train", dest="train", action="store_false", help="skip training")
    parser.add_argument(
        "--no-generate", dest="generate", action="store_false", help="skip generation"
    )
    parser.add_argument("--no-hf", action="store_true", help="skip Hugging Face transformers")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--amp",
        choices=("off", "native"),
        default="off",
        help="our training step's train.amp: 'off' (float32, as nanoGPT, the default) or "
        "'native' (bf16 autocast where the CPU has it, as `transformer train` runs the configs; "
        "nanoGPT's train.py stays float32 on a CPU)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall clock (default) or this process's CPU time (steadier on a "
        "shared machine, with --threads 1)",
    )


def _nanogpt_dir(args) -> Path | None:
    candidates = (
        [Path(args.nanogpt)]
        if args.nanogpt
        else [
            _REPO.parent / "shared" / "peers" / "nanogpt",
            Path.cwd().parent / "shared" / "peers" / "nanogpt",
        ]
    )
    return next((p for p in candidates if (p / "model.py").is_file()), None)


def _import_nanogpt(path: Path):
    spec = importlib.util.spec_from_file_location("nanogpt_model", path / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_config(args):
    from transformer.training.config import RunConfig

    overrides = [
        f"model.src_vocab_size={VOCAB}",
        f"model.tgt_vocab_size={VOCAB}",
        "model.dropout=0.0",
        "train.max_steps=1000000",
        "train.max_minutes=0",
        "train.progress=false",
        "train.device='cpu'",
        f"train.amp='{args.amp}'",
    ]
    return RunConfig.from_toml(args.config, overrides)


def _nano_model(nano, cfg, block: int):
    gcfg = nano.GPTConfig(
        block_size=block,
        vocab_size=VOCAB,
        n_layer=cfg.n_decoder_layers,
        n_head=cfg.n_heads,
        n_embd=cfg.d_model,
        dropout=0.0,
        bias=True,
    )
    if cfg.d_ff != 4 * cfg.d_model:
        raise ValueError(f"nanoGPT's MLP is 4 x d_model; the config has d_ff {cfg.d_ff}")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        return nano.GPT(gcfg)


class _NanoStep:
    """nanoGPT train.py's step: get_batch (random offsets), forward with targets, backward,
    clip_grad_norm_ 1.0, AdamW from `configure_optimizers`, zero_grad(set_to_none=True)."""

    def __init__(self, nano, run, ids: np.ndarray) -> None:
        t = run.train
        self.model = _nano_model(nano, run.model, run.data.block_size).train()
        with contextlib.redirect_stdout(io.StringIO()):
            self.optimizer = self.model.configure_optimizers(t.weight_decay, t.lr, t.betas, "cpu")
        self.ids, self.block, self.batch = ids, run.data.block_size, run.data.batch_size
        self.clip, self.lr = t.clip_norm, t.lr
        self.rng = np.random.default_rng(0)

    def train_step(self) -> None:
        ix = self.rng.integers(0, len(self.ids) - self.block, self.batch)
        T = self.block
        x = torch.stack([torch.from_numpy(self.ids[i : i + T].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(self.ids[i + 1 : i + 1 + T].astype(np.int64)) for i in ix]
        )
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        _, loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def _our_trainer(run, ids: np.ndarray, reference: bool, work: str):
    from transformer.data import LMStream
    from transformer.models import GPT
    from transformer.training.lm_data import LMData
    from transformer.training.trainer import Trainer

    stream = LMStream(ids, run.data.block_size, run.data.batch_size, seed=run.train.seed)
    data = LMData(stream, None, Path(work) / "tokenizer.json", ids[:0], 0)
    torch.manual_seed(run.train.seed)
    return Trainer(run, work, data, GPT(run.model), tensorboard=False, fast=not reference)


def _clock(args):
    return time.process_time if args.clock == "cpu" else time.perf_counter


def _time_steps(arm, n: int, clock) -> float:
    start = clock()
    for _ in range(n):
        arm.train_step()
    return (clock() - start) / max(n, 1)


def bench_training(args, run, nano) -> dict:
    ids = np.random.default_rng(0).integers(0, VOCAB, 200_000).astype(np.uint16)
    with tempfile.TemporaryDirectory() as work:
        arms = {"ours": _our_trainer(run, ids, args.reference, work)}
        if nano is not None:
            arms["nanoGPT"] = _NanoStep(nano, run, ids)
        times: dict[str, list[float]] = {name: [] for name in arms}
        for arm in arms.values():
            _time_steps(arm, args.warmup, _clock(args))
        for r in range(args.repeats):
            for name in list(arms)[:: 1 if r % 2 == 0 else -1]:
                times[name].append(_time_steps(arms[name], args.steps, _clock(args)))
    tokens = run.data.block_size * run.data.batch_size
    return {name: tokens / statistics.median(ts) for name, ts in times.items()}


def _generators(args, run, nano) -> dict:
    """name -> fn(prompt (B, T0)) -> (B, context) token ids, the same sampling settings."""
    from transformer.decoding import generate
    from transformer.fast import optimize
    from transformer.models import GPT

    cfg, context = run.model, run.data.block_size
    n_new = context - args.prompt_len
    top_k = args.top_k or None
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    if not args.reference:
        optimize(model)  # as `transformer generate` runs it
    gen = torch.Generator().manual_seed(0)
    sampling = dict(temperature=args.temperature, top_k=top_k, max_positions=context, generator=gen)
    fns = {
        "ours, KV cache": lambda p: generate(model, p, n_new, **sampling),
        "ours, no cache": lambda p: generate(model, p, n_new, use_cache=False, **sampling),
    }
    if not args.no_hf:
        hf = _hf_model(cfg, context)
        if hf is not None:
            fns["HF GPT2LMHeadModel.generate"] = lambda p: hf.generate(
                p,
                attention_mask=torch.ones_like(p),
                do_sample=True,
                max_new_tokens=n_new,
                temperature=args.temperature,
                top_k=args.top_k,
                top_p=1.0,
                pad_token_id=0,
            )
    if nano is not None:
        nano_model = _nano_model(nano, cfg, context).eval()
        fns["nanoGPT generate (no cache)"] = lambda p: nano_model.generate(
            p, n_new, temperature=args.temperature, top_k=top_k
        )
    return fns


def _hf_model(cfg, context: int):
    try:
        import transformers
    except ImportError:
        return None
    transformers.logging.set_verbosity_error()  # its per-call advice on attention masks
    act = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[cfg.activation]
    hcfg = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=context,
        n_embd=cfg.d_model,
        n_layer=cfg.n_decoder_layers,
        n_head=cfg.n_heads,
        n_inner=cfg.d_ff,
        activation_function=act,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(hcfg).eval()


def bench_generation(args, run, nano) -> dict:
    fns = _generators(args, run, nano)
    prompt = torch.randint(
        0, VOCAB, (args.batch, args.prompt_len), generator=torch.Generator().manual_seed(1)
    )
    n_new = run.data.block_size - args.prompt_len
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn(prompt)  # warm-up
        for r in range(args.repeats):
            for name in list(fns)[:: 1 if r % 2 == 0 else -1]:
                start = _clock(args)()
                out = fns[name](prompt)
                times[name].append(_clock(args)() - start)
                if out.shape != (args.batch, run.data.block_size):
                    raise RuntimeError(f"{name}: {tuple(out.shape)} tokens, expected the context")
    return {name: args.batch * n_new / statistics.median(ts) for name, ts in times.items()}


def _check(args, run) -> None:
    from transformer.cli.errors import UserError

    for flag, value in (
        ("--repeats", args.repeats),
        ("--steps", args.steps),
        ("--batch", args.batch),
        ("--prompt-len", args.prompt_len),
    ):
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    if args.prompt_len >= run.data.block_size:
        raise UserError(f"--prompt-len must be < the context ({run.data.block_size})")
    if run.data.task != "lm":
        raise UserError(f"{args.config}: data.task must be 'lm'")


def _print(title: str, rates: dict, base: str, target: str) -> None:
    print(f"\n{title}\n| arm | tokens/s | {base} / arm |\n|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rates[base] / rate:.2f}x |")
    print(target)


def run(args: argparse.Namespace) -> int:
    from transformer.cli.errors import UserError
    from transformer.config import ConfigError
    from transformer.fast import tune_malloc
    from transformer.runtime import use_bf16_autocast

    try:
        run_cfg = _run_config(args)
    except ConfigError as err:
        raise UserError(str(err)) from None
    _check(args, run_cfg)
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_malloc()
    path = _nanogpt_dir(args)
    nano = _import_nanogpt(path) if path is not None else None
    m, d = run_cfg.model, run_cfg.data
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
        f"{load[0]:.2f}, {args.clock} clock; GPT {m.n_decoder_layers} layers, d_model "
        f"{m.d_model}, {m.n_heads} heads, d_ff {m.d_ff}, vocab {VOCAB}, context "
        f"{d.block_size}; fast engine: {not args.reference}"
    )
    if nano is None:
        print("nanoGPT: skipped (no model.py at --nanogpt or ../shared/peers/nanogpt)")
    if args.train:
        rates = bench_training(args, run_cfg, nano)
        bf16 = use_bf16_autocast(args.amp, torch.device("cpu"))
        precision = "bf16 autocast" if bf16 else "float32"
        _print(
            f"Training, {d.batch_size} x {d.block_size} tokens per step, ours {precision}, "
            f"nanoGPT float32, median of "
            f"{args.repeats} x {args.steps} steps",
            rates,
            "ours",
            "target: ours >= 1.2x nanoGPT",
        )
    if args.generate:
        rates = bench_generation(args, run_cfg, nano)
        top_k = args.top_k or "all"
        _print(
            f"Generation, {args.batch} row(s), prompt {args.prompt_len} tokens + "
            f"{d.block_size - args.prompt_len} new, temperature {args.temperature}, top-k "
            f"{top_k}, median of {args.repeats}",
            rates,
            "ours, KV cache",
            "target: ours with the cache >= 1.5x without it and >= 1.5x HF generate()",
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0
