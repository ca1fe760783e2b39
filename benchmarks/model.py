"""`transformer bench model`: a full training step of our Transformer vs `nn.Transformer`.

Both models get the same token embeddings, positions and tied output layer (ours), the same
config, the same padded batches, the same loss (the trainer's label-smoothed cross-entropy,
`training.loss`, ε 0.1, padding ignored, mean over target tokens) and Adam; the steps
alternate ours/reference so load drifts hit both alike. Reported: real (non-pad) target
tokens/s (median step time of the repeats), the ratio ours/reference, and model FLOP
utilisation: analytic training FLOPs (3 x forward matmul FLOPs over the padded shapes:
projections, FFN, attention scores and sums, output layer) per second, divided by a float32
matrix-multiply ceiling measured in the same run (best of a few square `torch.mm`).

`--params` prints the paper's Table 3 parameter counts instead (37,000 shared vocabulary).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from transformer.config import ModelConfig
from transformer.fast import optimize, tune_malloc
from transformer.models import Transformer, count_parameters, parameter_count
from transformer.training.loss import label_smoothed_cross_entropy

EPS_LS = 0.1  # the loss's label smoothing: the paper's ε_ls, train.label_smoothing's default

# Benchmark sizes: (config overrides of "base", pairs per batch, min length, max length).
SIZES = {
    "small": (
        dict(
            d_model=256,
            n_heads=4,
            n_encoder_layers=3,
            n_decoder_layers=3,
            d_ff=1024,
            src_vocab_size=8000,
            tgt_vocab_size=8000,
        ),
        256,
        13,
        16,
    ),
    "base": (dict(src_vocab_size=8000, tgt_vocab_size=8000), 256, 13, 16),
    "tiny": (
        dict(
            d_model=64,
            n_heads=2,
            n_encoder_layers=1,
            n_decoder_layers=1,
            d_ff=128,
            src_vocab_size=500,
            tgt_vocab_size=500,
        ),
        8,
        5,
        8,
    ),
}

TABLE3_ROWS = [
    ("base", {}, 65),
    ("big", {"d_model": 1024, "d_ff": 4096, "n_heads": 16}, 213),
    ("(B) d_k=16", {"d_k": 16}, 58),
    ("(B) d_k=32", {"d_k": 32}, 60),
    ("(C) N=2", {"n_encoder_layers": 2, "n_decoder_layers": 2}, 36),
    ("(C) N=4", {"n_encoder_layers": 4, "n_decoder_layers": 4}, 50),
    ("(C) N=8", {"n_encoder_layers": 8, "n_decoder_layers": 8}, 80),
    ("(C) d_model=256", {"d_model": 256, "d_k": 32, "d_v": 32}, 28),
    ("(C) d_model=1024", {"d_model": 1024, "d_k": 128, "d_v": 128}, 168),
    ("(C) d_ff=1024", {"d_ff": 1024}, 53),
    ("(C) d_ff=4096", {"d_ff": 4096}, 90),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params", action="store_true", help="print the Table 3 parameter counts and exit"
    )
    parser.add_argument(
        "--sizes",
        default="small,base",
        help=f"comma-separated sizes from {sorted(SIZES)} (default small,base)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-malloc-tune",
        dest="malloc_tune",
        action="store_false",
        help="keep glibc's default mmap threshold (see tune_malloc)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's choice, usually all cores)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time steps by wall clock (default) or by this process's CPU "
        "time (steadier on a shared machine, best with --threads 1)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="sentence pairs per batch (default: the size's, 256)",
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="override P_drop for both models (default: the config's 0.1; "
        "nn.Transformer also drops attention weights and FFN activations)",
    )


def print_table3() -> None:
    print("Table 3 parameter counts, 37,000-token shared source/target/output vocabulary")
    print(f"{'row':<18}{'paper (M)':>10}{'ours (M)':>12}{'diff':>8}")
    for name, overrides, paper in TABLE3_ROWS:
        ours = parameter_count(ModelConfig.preset("base", **overrides))
        print(f"{name:<18}{paper:>10}{ours / 1e6:>12.2f}{ours / (paper * 1e6) - 1:>+8.1%}")


class ReferenceModel(nn.Module):
    """`nn.Transformer` between our embeddings/positions and our tied output layer."""

    def __init__(self, cfg: ModelConfig, ours: Transformer) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed, self.pos, self.dropout = ours.src_embed, ours.src_pos, nn.Dropout(cfg.dropout)
        self.core = nn.Transformer(
            d_model=cfg.d_model,
            nhead=cfg.n_heads,
            num_encoder_layers=cfg.n_encoder_layers,
            num_decoder_layers=cfg.n_decoder_layers,
            dim_feedforward=cfg.d_ff,
            dropout=cfg.dropout,
            activation=cfg.activation,
            batch_first=True,
            norm_first=cfg.norm_first,
            layer_norm_eps=cfg.layer_norm_eps,
        )
        if not cfg.norm_first:  # the paper's post-norm stacks have no final LayerNorm
            self.core.encoder.norm, self.core.decoder.norm = nn.Identity(), nn.Identity()

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        pad = src.eq(self.cfg.pad_id)  # (B, S)
        t = tgt.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=tgt.device).triu(1)
        x_src = self.dropout(self.embed(src) + self.pos(src.shape[1]))
        x_tgt = self.dropout(self.embed(tgt) + self.pos(t))
        hidden = self.core(
            x_src,
            x_tgt,
            tgt_mask=causal,
            src_key_padding_mask=pad,
            memory_key_padding_mask=pad,
            tgt_is_causal=True,
        )
        return F.linear(hidden, self.embed.weight)  # (B, T, V)


def make_batch(n: int, lo: int, hi: int, vocab: int, gen: torch.Generator):
    """Padded (src (B, S), tgt_in (B, T), tgt_out (B, T)) with lengths uniform in lo..hi."""

    def padded(lengths, extra):
        ids = torch.randint(1, vocab, (n, int(lengths.max()) + extra), generator=gen)
        ids[torch.arange(ids.shape[1])[None, :] >= (lengths + extra)[:, None]] = 0
        return ids

    src = padded(torch.randint(lo, hi + 1, (n,), generator=gen), 0)
    tgt = padded(torch.randint(lo, hi + 1, (n,), generator=gen), 1)
    return src, tgt[:, :-1], tgt[:, 1:]


def training_flops(cfg: ModelConfig, b: int, s: int, t: int) -> float:
    """3 x forward matmul FLOPs (backward = 2 x forward) of one step on padded shapes."""
    d, f, h = cfg.d_model, cfg.d_ff, cfg.n_heads
    dk, dv = cfg.head_dim_k, cfg.head_dim_v
    proj = 2 * d * h * (2 * dk + dv) + 2 * h * dv * d  # per token, one attention's linears
    ffn = 4 * d * f
    enc = b * s * (proj + ffn) + b * h * s * s * 2 * (dk + dv)
    dec_tok = b * t * (2 * proj + ffn)  # self + cross projections (cross K/V on source below)
    dec_tok += b * (s - t) * 2 * d * h * (dk + dv)  # cross K/V run over S, not T, positions
    dec_att = b * h * (t * t + t * s) * 2 * (dk + dv)
    out = b * t * 2 * d * cfg.tgt_vocab_size
    return 3.0 * (cfg.n_encoder_layers * enc + cfg.n_decoder_layers * (dec_tok + dec_att) + out)


def matmul_ceiling(repeats: int = 5, clock=time.perf_counter) -> float:
    """Best float32 torch.mm throughput (FLOP/s) over a few square sizes, median of repeats."""
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        times = []
        for _ in range(repeats):
            start = clock()
            torch.mm(a, b)
            times.append(clock() - start)
        best = max(best, 2 * n**3 / statistics.median(times))
    return best


def train_step(model, optimizer, batch, cfg: ModelConfig, clock=time.perf_counter) -> float:
    """One forward/backward/Adam step; returns its duration on `clock`."""
    src, tgt_in, tgt_out = batch
    start = clock()
    logits = model(src, tgt_in)  # (B, T, V)
    sums = label_smoothed_cross_entropy(logits, tgt_out, EPS_LS, cfg.pad_id)
    (sums.loss / sums.n_tokens).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return clock() - start


def _clock(args):
    return time.process_time if getattr(args, "clock", "wall") == "cpu" else time.perf_counter


def bench_size(name: str, args) -> dict:
    overrides, n_pairs, lo, hi = SIZES[name]
    n_pairs = getattr(args, "pairs", None) or n_pairs
    if args.dropout is not None:
        overrides = {**overrides, "dropout": args.dropout}
    cfg = ModelConfig.preset("base", **overrides)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    ours = Transformer(cfg).train()
    if not getattr(args, "reference", False):
        optimize(ours)  # the fast engine, as `transformer train` runs it
    ref = ReferenceModel(cfg, Transformer(cfg)).train()
    # The paper's Adam (Section 5.3); the fused kernel where this torch has one, for both.
    opts = [
        torch.optim.Adam(m.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
        for m in (ours, ref)
    ]
    batches = [
        make_batch(n_pairs, lo, hi, cfg.src_vocab_size, gen)
        for _ in range(args.warmup + args.repeats)
    ]
    times: list[list[float]] = [[], []]
    for i, batch in enumerate(batches):
        for j, (model, opt) in enumerate(zip((ours, ref), opts)):
            elapsed = train_step(model, opt, batch, cfg, _clock(args))
            if i >= args.warmup:
                times[j].append(elapsed)
    timed = batches[args.warmup :]
    tokens = statistics.mean(int(b[2].ne(cfg.pad_id).sum()) for b in timed)
    flops = statistics.mean(
        training_flops(cfg, b[0].shape[0], b[0].shape[1], b[1].shape[1]) for b in timed
    )
    med = [statistics.median(ts) for ts in times]
    return dict(
        name=name,
        params=(count_parameters(ours), count_parameters(ref)),
        tokens=tokens,
        step=med,
        tok_s=[tokens / m for m in med],
        flop_s=[flops / m for m in med],
        flops=flops,
    )


def _check_args(args) -> list[str]:
    """Validate the options (UserError naming the flag); returns the size names."""
    from transformer.cli.errors import UserError

    names = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for s in names:
        if s not in SIZES:
            raise UserError(f"--sizes: unknown size {s!r}; choose from {sorted(SIZES)}")
    for flag, value, low in (
        ("--repeats", args.repeats, 1),
        ("--warmup", args.warmup, 0),
        ("--pairs", args.pairs, 1),
        ("--threads", args.threads, 1),
    ):
        if value is not None and value < low:
            raise UserError(f"{flag} must be >= {low}, got {value}")
    if args.dropout is not None and not 0.0 <= args.dropout < 1.0:
        raise UserError(f"--dropout must be in [0, 1), got {args.dropout}")
    return names


def _print_sizes(names: list[str], args) -> None:
    for name in names:
        overrides, n_pairs, lo, hi = SIZES[name]
        cfg = ModelConfig.preset("base", **overrides)
        print(
            f"{name}: d_model {cfg.d_model}, {cfg.n_heads} heads, {cfg.n_encoder_layers}+"
            f"{cfg.n_decoder_layers} layers, d_ff {cfg.d_ff}, vocab {cfg.tgt_vocab_size}, "
            f"dropout {args.dropout if args.dropout is not None else cfg.dropout}, "
            f"{args.pairs or n_pairs} pairs of length {lo}-{hi} per batch"
        )


def _print_rows(rows: list[dict], ceiling: float) -> None:
    print(
        f"{'size':<6}{'model':<16}{'params':>12}{'step s':>9}{'tgt tok/s':>11}"
        f"{'GFLOP/s':>9}{'MFU':>7}{'ratio':>7}"
    )
    for r in rows:
        for j, label in enumerate(("ours", "nn.Transformer")):
            ratio = r["tok_s"][0] / r["tok_s"][1] if j == 0 else 1.0
            print(
                f"{r['name']:<6}{label:<16}{r['params'][j]:>12,}{r['step'][j]:>9.3f}"
                f"{r['tok_s'][j]:>11.0f}{r['flop_s'][j] / 1e9:>9.1f}"
                f"{r['flop_s'][j] / ceiling:>7.1%}{ratio:>7.2f}"
            )


def run(args) -> int:
    if args.params:
        print_table3()
        return 0
    names = _check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = tune_malloc() if args.malloc_tune else False
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"malloc tuned: {tuned}, load average {load[0]:.2f} {load[1]:.2f}"
    )
    ceiling = matmul_ceiling(clock=_clock(args))
    print(
        f"matmul ceiling (float32 torch.mm, best size, {args.clock} clock): "
        f"{ceiling / 1e9:.1f} GFLOP/s"
    )
    rows = [bench_size(name, args) for name in names]
    after = matmul_ceiling(clock=_clock(args))
    print(f"matmul ceiling after: {after / 1e9:.1f} GFLOP/s (MFU uses the higher of the two)")
    _print_sizes(names, args)
    _print_rows(rows, max(ceiling, after))
    print(
        f"load average after: {os.getloadavg()[0]:.2f}; median of {args.repeats} steps "
        f"after {args.warmup} warm-up ({args.clock} clock); tokens = real (non-pad) target "
        "tokens per step"
    )
    return 0
