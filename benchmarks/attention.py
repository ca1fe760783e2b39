"""`transformer bench attention`: the exercise's three benchmarks and a long-sequence table.

1. The exercise (seeds/000): queries, heads and batch level (d_k = d_v = 64, N = M = 32, 8 heads,
   batch 32, 0/1 integer masks from `torch.randint`), timed like its `benchmark` (one call per
   fresh input, mean ± std over `--n-tries`), with rows for the loop, broadcasting, einsum,
   torch's SDPA and the fast path `attend`; every output is checked against the loop's.
2. Long sequences (B = 4, H = 8, Dk = 64, T = S = 512 and 2048; no mask, a padding mask,
   causal; forward and forward+backward): median time of `--repeats` side-by-side repeats and
   the peak memory of one call.

Peak memory is the growth of the process's peak resident set (Linux VmHWM, reset through
/proc/self/clear_refs after `malloc_trim`, with glibc's mmap threshold fixed at 128 KiB so that
freed tensors leave the resident set) during one call, outputs and gradients included: it sees
every allocation torch makes on the CPU (tracemalloc does not). "n/a" where unsupported.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import peak_rss_growth_mib
from transformer import attention as A
from transformer.fast.attend import attend

D_K = D_V = 64
N_QUERIES = M_KEYS = 32
N_HEAD = 8
BATCH = 32
LONG_BATCH, LONG_HEADS = 4, 8
TARGET_RATIO = 1.1  # the fast path may be at most 1.1x the better of broadcasting and SDPA
CASE_BUDGET_S, MAX_REPEATS = 0.5, 300  # repeats for small long-table/sweep cases


def add_arguments(parser) -> None:
    parser.add_argument("--n-tries", type=int, help="exercise inputs per level (default 100)")
    parser.add_argument("--repeats", type=int, help="long-sequence repeats, median (default 5)")
    parser.add_argument(
        "--lengths", type=int, nargs="+", help="long-sequence T = S (default 512 2048)"
    )
    parser.add_argument("--quick", action="store_true", help="10 tries, 2 repeats, T = 512")
    parser.add_argument(
        "--sweep", action="store_true", help="also print the broadcasting/SDPA crossover sweep"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    parser.add_argument("--seed", type=int, default=0)


# ------------------------------------------------------------------------------------------
# Adapters: every variant runs in the exercise's layout, through the same views.
# ------------------------------------------------------------------------------------------


def _to_bhtd(x: torch.Tensor, rank: int) -> torch.Tensor:
    """(N, D) | (N, H, D) | (B, N, H, D) -> (B, H, N, D), in as few view ops as possible (at
    the queries level each op is a visible part of a ~30 µs call)."""
    return (
        x[None, None] if rank == 2 else x.transpose(0, 1)[None] if rank == 3 else x.transpose(1, 2)
    )


def _from_bhtd(out: torch.Tensor, rank: int) -> torch.Tensor:
    return out[0, 0] if rank == 2 else out[0].transpose(0, 1) if rank == 3 else out.transpose(1, 2)


def _bhtd(fn: Callable) -> Callable:
    """Wrap fn(q, k, v, mask4) on (B, H, N|M, D) tensors and a (B|1, 1, N, M) mask so that it
    takes and returns the exercise's layout at any level."""

    def run(Q, K, V, mask):
        rank = Q.dim()
        m = mask[None, None] if rank < 4 else mask[:, None]  # (B|1, 1, N, M)
        out = fn(_to_bhtd(Q, rank), _to_bhtd(K, rank), _to_bhtd(V, rank), m)
        return _from_bhtd(out, rank)

    return run


def _einsum_any_level(Q, K, V, mask):
    """`multi_head_attention_einops` on (N, D) | (N, H, D) | (B, N, H, D) inputs."""
    rank = Q.dim()
    up = {2: (None, slice(None), None), 3: (None,), 4: ()}[rank]  # -> (B, N, H, D)
    out = A.multi_head_attention_einops(Q[up], K[up], V[up], mask[None] if rank < 4 else mask)
    return out[{2: (0, slice(None), 0), 3: (0,), 4: ()}[rank]]


def _sdpa(q, k, v, mask):
    """Torch's fused kernel as is: its bool mask means "may attend" (the opposite of ours)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=torch.logical_not(mask))


def _attend(q, k, v, mask):
    return attend(q, k, v, mask)[0]


LEVELS = {  # name -> (leading batch axes, head axes, slow loop, broadcasting)
    "queries": ((), (), A.slow_queries_attention, A.queries_attention),
    "heads": ((), (N_HEAD,), A.slow_heads_attention, A.heads_attention),
    "batch": ((BATCH,), (N_HEAD,), A.slow_multi_head_attention, A.multi_head_attention),
}


def _level_inputs(name: str, gen: torch.Generator) -> list[torch.Tensor]:
    """Q (.., N, .., Dk), K (.., M, .., Dk), V (.., M, .., Dv) from torch.rand and a 0/1
    integer mask (.., N, M) from torch.randint, as the exercise's generators make them."""
    b, h = LEVELS[name][:2]
    shapes = [(*b, N_QUERIES, *h, D_K), (*b, M_KEYS, *h, D_K), (*b, M_KEYS, *h, D_V)]
    inputs = [torch.rand(s, generator=gen) for s in shapes]
    return [*inputs, torch.randint(0, 2, (*b, N_QUERIES, M_KEYS), generator=gen)]


# ------------------------------------------------------------------------------------------
# Part 1: the exercise's benchmarks.
# ------------------------------------------------------------------------------------------


def _exercise_level(name: str, n_tries: int, gen: torch.Generator) -> dict[str, list[float]]:
    slow, broadcast = LEVELS[name][2:]
    variants = {
        f"{slow.__name__} (loop)": slow,
        f"{broadcast.__name__} (broadcasting)": broadcast,
        "multi_head_attention_einops (einsum)": _einsum_any_level,
        "torch SDPA": _bhtd(_sdpa),
        "attend (fast path)": _bhtd(_attend),
    }
    times: dict[str, list[float]] = {v: [] for v in variants}
    agree = dict.fromkeys(variants, True)
    for i in range(n_tries + 1):  # try 0 warms up and is not recorded
        inputs = _level_inputs(name, gen)
        names = list(variants)
        order = names[i % len(names) :] + names[: i % len(names)]  # rotate who goes first
        outs = {}
        for v in order:
            start = time.perf_counter()
            outs[v] = variants[v](*inputs)
            if i:
                times[v].append(time.perf_counter() - start)
        for v in names[1:]:
            agree[v] &= bool(torch.allclose(outs[names[0]], outs[v]))
    _print_level(name, times, agree, n_tries)
    return times


def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:9.1f} µs"


def _print_level(name, times, agree, n_tries):
    names = list(times)
    slow_mean = float(np.mean(times[names[0]]))
    print(f"\n### {name} level ({n_tries} tries; mean ± std per call, like the exercise)\n")
    print("| variant | agrees with loop | mean ± std | median | speedup vs loop (means) |")
    print("|---|---|---|---|---|")
    for v in names:
        t = times[v]
        check = "reference" if v == names[0] else ("yes" if agree[v] else "**NO**")
        mean, std, med = float(np.mean(t)), float(np.std(t)), statistics.median(t)
        print(
            f"| {v} | {check} | {_fmt_time(mean)} ± {_fmt_time(std).strip()} | {_fmt_time(med)} "
            f"| {slow_mean / mean:8.1f}x |"
        )
    best = min(statistics.median(times[names[1]]), statistics.median(times["torch SDPA"]))
    ratio = statistics.median(times["attend (fast path)"]) / best
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"\nfast path / better of broadcasting and SDPA (medians): {ratio:.2f} ({verdict})")
    if name == "batch":
        speedup = slow_mean / float(np.mean(times["attend (fast path)"]))
        verdict = "met" if speedup >= 100 else "NOT met"
        print(f"fast path speedup over the loop (means): {speedup:.1f}x (target >= 100: {verdict})")


# ------------------------------------------------------------------------------------------
# Part 2: long sequences (and the crossover sweep), time and peak memory.
# ------------------------------------------------------------------------------------------


def _case(b: int, h: int, t: int, s: int, kind: str, gen: torch.Generator):
    """Inputs and the three variants for one (shape, mask kind) case."""
    q = torch.randn(b, h, t, D_K, generator=gen)
    k, v = (torch.randn(b, h, s, D_K, generator=gen) for _ in range(2))
    mask, causal = None, kind == "causal"
    if kind == "padding":  # each sequence keeps its first L keys, L uniform in [S/2, S]
        keep = torch.randint(s // 2, s + 1, (b, 1, 1, 1), generator=gen)
        mask = torch.arange(s).view(1, 1, 1, s) >= keep  # (B, 1, 1, S)
    allowed = None if mask is None else ~mask
    is_causal = causal and t == s
    if causal and t != s:
        allowed = ~A.future_mask(t, s, q.device)
    variants = {
        "broadcasting": lambda q, k, v: attend(q, k, v, mask, causal, need_weights=True)[0],
        "SDPA": lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, is_causal=is_causal
        ),
        "attend": lambda q, k, v: attend(q, k, v, mask, causal)[0],
    }
    return (q, k, v), variants


def _runner(fn, inputs, backward: bool) -> Callable[[], torch.Tensor]:
    if not backward:
        return functools.partial(torch.no_grad()(fn), *inputs)
    leaves = [x.detach().requires_grad_() for x in inputs]

    def forward_backward():
        out = fn(*leaves)
        torch.autograd.grad(out, leaves, torch.ones_like(out))  # freed on return, like out's graph
        return out.detach()

    return forward_backward


def _compare(shape, kind, backward, repeats, gen, memory):
    """Median seconds (and peak MiB) per variant, repeats interleaved side by side."""
    inputs, variants = _case(*shape, kind, gen)
    runs = {name: _runner(fn, inputs, backward) for name, fn in variants.items()}
    outs, warm = {}, 0.0
    for name, run in runs.items():  # warm-up, and the agreement check
        start = time.perf_counter()
        outs[name] = run()
        warm = max(warm, time.perf_counter() - start)
    agree = all(torch.allclose(outs["SDPA"], o, atol=1e-5, rtol=1e-4) for o in outs.values())
    # Small cases get more repeats (about CASE_BUDGET_S seconds in all), so that the median
    # is not one scheduler hiccup on a shared machine.
    repeats = max(repeats, min(MAX_REPEATS, int(CASE_BUDGET_S / (len(runs) * warm))))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    med.update({f"min {name}": min(t) for name, t in times.items()})
    peak = {
        name: peak_rss_growth_mib(run, fixed_mmap=True) if memory else None
        for name, run in runs.items()
    }
    return med, peak, agree


def _long_table(lengths, repeats, gen, sweep_shapes=None) -> list[tuple]:
    """Print one row per (shape, mask kind, pass); return (shape, kind, backward, medians,
    peaks, attend / best) for each."""
    memory = sweep_shapes is None
    shapes = sweep_shapes or [(LONG_BATCH, LONG_HEADS, t, t) for t in lengths]
    head = "| B | H | T | S | mask | pass | broadcasting | SDPA | attend | attend / best | "
    head += "(by min) | agree |"
    if memory:
        head += " peak MiB broadcasting / SDPA / attend |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    rows = []
    for shape in shapes:
        for kind in ("none", "padding", "causal"):
            for backward in (False, True):
                med, peak, agree = _compare(shape, kind, backward, repeats, gen, memory)
                ratio = med["attend"] / min(med["broadcasting"], med["SDPA"])
                rows.append((shape, kind, backward, med, peak, ratio))
                row = " | ".join(str(x) for x in shape)
                row += f" | {kind} | {'fwd+bwd' if backward else 'fwd'} | "
                row += " | ".join(_fmt_time(med[n]) for n in ("broadcasting", "SDPA", "attend"))
                by_min = med["min attend"] / min(med["min broadcasting"], med["min SDPA"])
                row += f" | {ratio:.2f} | {by_min:.2f} | {'yes' if agree else '**NO**'} |"
                if memory:
                    mib = ("n/a" if peak[n] is None else f"{peak[n]:.0f}" for n in peak)
                    row += " " + " / ".join(mib) + " |"
                print(f"| {row}", flush=True)
    return rows


def _summarise_long(rows) -> None:
    worst = max(row[-1] for row in rows)
    verdict = "met" if worst <= TARGET_RATIO else "NOT met"
    print(f"\nworst attend / better of broadcasting and SDPA: {worst:.2f} ({verdict})")
    longest = max(row[0][2] for row in rows)
    for shape, kind, backward, med, peak, _ in rows:
        if shape[2] == longest and kind == "causal" and backward:
            time_ratio = med["attend"] / med["SDPA"]
            line = f"T = {longest} causal fwd+bwd: attend / SDPA time {time_ratio:.2f}"
            if peak["attend"] is not None and peak["SDPA"]:
                line += f", peak memory {peak['attend'] / peak['SDPA']:.2f}x SDPA's"
            print(line + " (targets: time <= 1.1, memory <= 1.1)")


def _dispatch_overhead(n: int = 2000) -> None:
    """attend's own cost: it against the bare SDPA call it makes (the mask inverted to SDPA's
    meaning in the call, as any caller with a True = masked mask must), on a tiny input."""
    q = k = v = torch.randn(1, 1, 8, 8)
    mask = torch.tensor([False] * 6 + [True] * 2).view(1, 1, 1, 8)
    calls = {
        "SDPA": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=~mask),
        "attend": lambda: attend(q, k, v, mask),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for _ in range(n):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    sdpa, ours = (statistics.median(times[name]) for name in calls)
    print(
        f"attend's dispatch overhead (B = H = 1, T = S = 8, padding mask; median of {n}): "
        f"bare SDPA {sdpa * 1e6:.1f} µs, attend {ours * 1e6:.1f} µs (+{(ours - sdpa) * 1e6:.1f} µs)"
    )


# The sweep's (B, H, T, S): between the exercise's sizes and the long ones, decoding steps over
# a cache (T = 1) and the few-queries crossover of `attend` (T <= 8).
# fmt: off
SWEEP_SHAPES = [  # (B, H, T, S)
    (1, 1, 32, 32), (1, 8, 32, 32), (32, 8, 32, 32), (1, 8, 128, 128), (4, 8, 128, 128),
    (4, 8, 256, 256), (32, 8, 1, 64), (32, 8, 4, 64), (32, 8, 16, 64), (4, 8, 1, 1024),
    (4, 8, 8, 1024),
]
# fmt: on


# ------------------------------------------------------------------------------------------
# The command.
# ------------------------------------------------------------------------------------------


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M).group(1)
    except (OSError, AttributeError):
        pass
    return (
        f"{model}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args) -> int:
    from transformer.cli.errors import UserError

    defaults = (10, 2, [512]) if args.quick else (100, 5, [512, 2048])
    for field, default in zip(("n_tries", "repeats", "lengths"), defaults):
        if getattr(args, field) is None:
            setattr(args, field, default)
    for field in ("n_tries", "repeats"):
        if getattr(args, field) < 1:
            raise UserError(f"--{field.replace('_', '-')} must be at least 1")
    if any(t < 1 for t in args.lengths):
        raise UserError(f"--lengths must be positive, got {args.lengths}")
    if args.threads < 0:
        raise UserError(f"--threads must be 0 (torch's default) or more, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    print(f"machine: {_machine()}\nload average at start (1/5/15 min): {_load()}")
    print("\n## The exercise's benchmarks (d_k = d_v = 64, N = M = 32, 8 heads, batch 32)")
    for name in LEVELS:
        _exercise_level(name, args.n_tries, gen)
    print(f"\nload average: {_load()}")
    print(
        f"\n## Long sequences (B = 4, H = 8, Dk = 64; median of >= {args.repeats} side-by-side "
        "repeats)\n"
    )
    rows = _long_table(args.lengths, args.repeats, gen)
    _summarise_long(rows)
    _dispatch_overhead()
    if args.sweep:
        budget = f"median of >= {args.repeats} repeats, ~{CASE_BUDGET_S} s a case"
        print(f"\n## Crossover sweep ({budget})\n")
        _long_table(None, args.repeats, gen, sweep_shapes=SWEEP_SHAPES)
    print(f"\nload average at end: {_load()}")
    return 0
