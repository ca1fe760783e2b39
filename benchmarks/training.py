"""`transformer bench training`: end-to-end training throughput on Multi30k.

Two arms with the same model (same initial weights), measured side by side, alternating,
`--repeats` times (median reported):
- trainer: `Trainer.train_step` over length-bucketed `TokenBatcher` batches (`--max-tokens`),
  i.e. the real pipeline (label smoothing, Noam rate, Adam, fast attention path);
- plain: a textbook loop over shuffled fixed-size padded batches (`FixedSizeBatcher`), with
  as many sentences per batch as the trainer's batches hold on average, `F.cross_entropy`
  with label smoothing and the same Adam.
Reported per arm: real (non-pad) target tokens/s, padding fraction, seconds per step and the
model FLOP/s on real tokens (6 · weights · tokens, matmuls only, output projection
included); MFU when `--peak-tflops` is given. The tokenizer and encoded corpus are cached
under `--work`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="configs/multi30k-de-en.toml")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override the config (e.g. model.d_model=128)",
    )
    parser.add_argument("--data-dir", default=None, help="corpora root (or TRANSFORMER_DATA)")
    parser.add_argument(
        "--work",
        default=os.path.join(tempfile.gettempdir(), "transformer-bench-training"),
        help="cache directory for the tokenizer and the encoded corpus",
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ddp",
        type=int,
        default=0,
        metavar="N",
        help="instead: N processes x 1 thread (torchrun, DDP) against 1 process x N threads, "
        "the same N batches a step (benchmarks.training_ddp)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=0.0,
        help="the device's peak TFLOP/s, to report MFU (0: not reported)",
    )


def _arms(args):
    import torch

    from transformer.data import FixedSizeBatcher
    from transformer.models import Transformer
    from transformer.training.config import RunConfig
    from transformer.training.data import build_data
    from transformer.training.trainer import Trainer

    overrides = [*args.set, "train.progress=false"]
    if args.data_dir:
        overrides.append(f"data.data_dir={str(args.data_dir)!r}")
    run = RunConfig.from_toml(args.config, overrides)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data, model_cfg = build_data(run, work, progress=False)
    run = RunConfig(model=model_cfg, data=run.data, train=run.train)
    torch.manual_seed(run.train.seed)
    model = Transformer(model_cfg)
    plain_model = Transformer(model_cfg)
    plain_model.load_state_dict(model.state_dict())
    trainer = Trainer(
        run,
        tempfile.mkdtemp(dir=work),
        data,
        model,
        tensorboard=False,
        fast=not getattr(args, "reference", False),
    )
    pad = data.train.padding(0)
    fixed = FixedSizeBatcher(
        data.train.data,
        max(1, round(pad.mean_batch_size)),
        seed=run.train.seed,
        pad_id=model_cfg.pad_id,
    )
    return run, trainer, _PlainLoop(run, plain_model, fixed, trainer.device)


class _PlainLoop:
    """The baseline: fixed-size padded batches, F.cross_entropy, Adam with the Noam rate."""

    def __init__(self, run, model, batcher, device) -> None:
        from transformer.training.optim import build_adam

        self.run, self.model, self.device = run, model.to(device), device
        self.batches = batcher.iterate()
        self.optimizer = build_adam(model, run.train.betas, run.train.eps)
        self.step = 0

    def train_step(self):
        import torch
        import torch.nn.functional as F

        from transformer.training.optim import set_lr
        from transformer.training.schedule import noam_lr
        from transformer.training.step import StepStats

        b = next(self.batches).to(self.device)
        bf16 = self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = self.model(b.src, b.tgt_in)  # (B, T, V)
        loss = F.cross_entropy(
            logits.float().flatten(0, 1),
            b.tgt_out.flatten(),
            ignore_index=self.run.model.pad_id,
            label_smoothing=self.run.train.label_smoothing,
        )
        loss.backward()
        self.step += 1
        t = self.run.train
        set_lr(self.optimizer, noam_lr(self.step, self.run.model.d_model, t.warmup, t.lr_scale))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        n_pos = b.src.numel() + b.tgt_out.numel()
        n_pad = n_pos - b.n_src_tokens - b.n_tgt_tokens
        return StepStats(float(loss.detach()), 0.0, b.n_tgt_tokens, n_pad, n_pos)


def _time(arm, steps: int, warmup: int, device) -> dict[str, float]:
    import torch

    for _ in range(warmup):
        arm.train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    tokens = pad = pos = 0
    for _ in range(steps):
        stats = arm.train_step()
        n_tok, n_pad, n_pos = stats.tokens, stats.pad, stats.positions
        tokens, pad, pos = tokens + n_tok, pad + n_pad, pos + n_pos
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "tok_s": tokens / seconds,
        "padding": pad / pos,
        "s_step": seconds / steps,
        "tokens": tokens,
    }


def _flops_per_target_token(model, src_per_tgt: float) -> float:
    """Matmul FLOPs (6 · weights · tokens, forward + backward) per real target token: the
    encoder side (encoder layers, cross-attention K/V) runs on S/T source tokens per target
    token; the decoder layers and the output projection (d_model · V) on one."""
    enc = dec = 0
    for name, p in model.named_parameters():
        if p.dim() < 2 or "embed" in name or "pos" in name:
            continue  # biases/norms (negligible) and embedding look-ups (no matmul)
        if name.startswith("encoder") or "kv_proj" in name:
            enc += p.numel()
        else:
            dec += p.numel()
    cfg = model.config
    return 6.0 * (dec + cfg.d_model * cfg.tgt_vocab_size + enc * src_per_tgt)


def run(args: argparse.Namespace) -> int:
    import subprocess

    if args.ddp:
        from benchmarks.training_ddp import compare

        return compare(args)

    run_cfg, trainer, plain = _arms(args)
    results: dict[str, list[dict[str, float]]] = {"trainer": [], "plain": []}
    for _ in range(args.repeats):
        results["trainer"].append(_time(trainer, args.steps, args.warmup_steps, trainer.device))
        results["plain"].append(_time(plain, args.steps, args.warmup_steps, trainer.device))
    data = trainer.data.train.data
    ratio = float(data.src_lengths.sum()) / float(data.tgt_lengths.sum() + len(data))
    flops = _flops_per_target_token(trainer.model, ratio)
    m = run_cfg.model
    print(
        f"model d_model={m.d_model} layers={m.n_encoder_layers}+{m.n_decoder_layers} "
        f"d_ff={m.d_ff} vocab={m.tgt_vocab_size}; device {trainer.device}; "
        f"max_tokens={run_cfg.data.max_tokens}; {args.steps} steps x {args.repeats} repeats"
    )
    print("| arm | real target tok/s | padding | s/step | model TFLOP/s | MFU |")
    print("|---|---:|---:|---:|---:|---:|")
    medians = {}
    for arm, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("tok_s", "padding", "s_step")}
        medians[arm] = med
        tflops = med["tok_s"] * flops / 1e12
        mfu = f"{tflops / args.peak_tflops:.1%}" if args.peak_tflops else "n/a"
        print(
            f"| {arm} | {med['tok_s']:,.0f} | {med['padding']:.1%} | {med['s_step']:.3f} | "
            f"{tflops:.4f} | {mfu} |"
        )
    speedup = medians["trainer"]["tok_s"] / medians["plain"]["tok_s"]
    print(f"trainer / plain real tokens/s: {speedup:.2f}x (target >= 1.5x)")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime: {load}")
    return 0
