"""Speed guard: time the code of two git revisions side by side, in one run.

    python scripts/fast_guard_bench.py BASE HEAD [--cases step,greedy,beam4,...]
                                       [--repeats 5] [--iters 5] [--warmup 2] [--threads 2]
                                       [--quick] [--json FILE]

BASE and HEAD are git revisions (checked out into temporary worktrees, removed afterwards) or
directories holding a checkout. Each case is timed in a fresh subprocess per revision (this
script re-run with `--child`, the revision's `src/` first on PYTHONPATH), the two revisions
alternating which goes first, `--repeats` rounds; a subprocess does `--warmup` untimed calls
and reports the median of `--iters` timed ones; the table gives the median over the rounds,
HEAD's speed relative to BASE's (time BASE / time HEAD), and flags a case where HEAD is more
than 5% slower. Cases (the figures of docs/benchmarks.md about the model, attention, decoding
and the training step):

- step:       one training step (forward, backward, Adam) of the Multi30k-sized model
              (d_model 256, 4 heads, 3+3 layers, d_ff 1024, vocabulary 8,188), 2,048 target
              tokens, dropout 0.1 (`scripts/micro_bench.py step`, `transformer bench training`);
- step-base:  the same with the paper's base model on 1,024 tokens (`transformer bench model`);
- greedy, beam4: cached decoding of 64 random sources (8-30 tokens) by the `transformer bench
              decode` model (vocabulary 8,000, d_model 256, 3+3 layers), output lengths forced
              to 1.1x the source's, as `translate` runs it;
- encode:     the encoder alone on those sources, no autograd;
- attention:  `attend` on B 4, H 8, T = S = 512, Dk 64 with a padding mask, forward, and
              forward + backward causal (`transformer bench attention`'s long-sequence table);
- exercise:   the exercise's `multi_head_attention` (batch 32, N = M = 32, 8 heads, Dk 64).

Each revision runs as it ships: with the fast engine (`transformer.fast.optimize`) where the
revision has one, else as its CLI ran (weights packed for decoding where it had
`transformer.layers.packed`). `--quick` shrinks every case for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# This checkout's benchmarks/ (its model definitions and timing helper serve both revisions,
# whose `transformer` comes from PYTHONPATH).
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import BOS, EOS, MULTI30K_VOCAB, PAD, median_seconds, multi30k_config

CASES = ("step", "step-base", "greedy", "beam4", "encode", "attention", "exercise")
SLOWER = 0.95  # HEAD's speed below 95% of BASE's: a figure fell by more than 5%


# ---- the child: one case, timed in the revision on PYTHONPATH ----------------------------


def _prepare_model(model, decoding: bool):
    """The model as the revision's CLI runs it: `optimize` where the fast engine exists, else
    (older revisions, whose speed-ups were built in) packed weights for decoding."""
    try:
        from transformer.fast import optimize
    except ImportError:
        if decoding:
            try:
                from transformer.layers.packed import pack_for_inference
            except ImportError:
                return model
            pack_for_inference(model)
        return model
    return optimize(model)


def _tune_malloc() -> None:
    try:
        from transformer.fast import tune_malloc
    except ImportError:
        try:
            from transformer.runtime import tune_malloc
        except ImportError:
            return
    tune_malloc()


def _step_case(quick: bool, base: bool):
    import torch

    from transformer.config import ModelConfig
    from transformer.models import Transformer
    from transformer.training.loss import label_smoothed_cross_entropy
    from transformer.training.optim import build_adam

    vocab = MULTI30K_VOCAB
    if base:
        cfg = ModelConfig.preset("base", src_vocab_size=vocab, tgt_vocab_size=vocab)
        tokens = 256 if quick else 1024
    else:
        cfg = multi30k_config(vocab)
        tokens = 256 if quick else 2048
    torch.manual_seed(0)
    model = _prepare_model(Transformer(cfg).train(), decoding=False)
    rows = tokens // 16
    src, tgt = torch.randint(4, vocab, (rows, 16)), torch.randint(4, vocab, (rows, 17))
    opt = build_adam(model)

    def one_step() -> None:
        sums = label_smoothed_cross_entropy(model(src, tgt[:, :-1]), tgt[:, 1:], 0.1, 0)
        (sums.loss / sums.n_tokens).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return one_step


def _decode_model_and_sources(quick: bool):
    import torch

    from transformer.models import Transformer

    vocab = 8000  # as `transformer bench decode`
    cfg = multi30k_config(vocab, max_len=512)
    torch.manual_seed(0)
    model = _prepare_model(Transformer(cfg).eval(), decoding=True)
    gen = torch.Generator().manual_seed(1)
    n = 16 if quick else 64
    lengths = torch.randint(8, 31, (n,), generator=gen)
    src = torch.full((n, int(lengths.max())), PAD, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        src[row, :length] = torch.randint(4, vocab, (length,), generator=gen)
    out_len = (lengths.float() * 1.1).long().clamp(min=1)
    return model, src, out_len


def _decode_case(quick: bool, beam: int):
    from transformer.decoding import SpecialIds, beam_search, greedy_decode

    model, src, out_len = _decode_model_and_sources(quick)
    ids = SpecialIds(bos=BOS, eos=EOS, pad=PAD)
    if quick:
        out_len = out_len.clamp(max=4)
    if beam == 1:
        return lambda: greedy_decode(
            model, src, ids, min_len=out_len, max_len=out_len, with_scores=False
        )
    return lambda: beam_search(
        model, src, ids, beam_size=beam, alpha=0.6, min_len=out_len, max_len=out_len
    )


def _encode_case(quick: bool):
    import torch

    model, src, _ = _decode_model_and_sources(quick)

    def run() -> None:
        with torch.inference_mode():
            model.encode(src)

    return run


def _attend():
    try:
        from transformer.fast.attend import attend
    except ImportError:
        from transformer.attention import attend
    return attend


def _attention_case(quick: bool):
    import torch

    attend = _attend()
    t = 128 if quick else 512
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(4, 8, t, 64, generator=gen, requires_grad=True) for _ in "qkv")
    pad = torch.zeros(4, 1, 1, t, dtype=torch.bool)
    pad[1, ..., t // 2 :] = True

    def run() -> None:
        with torch.no_grad():
            attend(q, k, v, pad)
        out, _ = attend(q, k, v, causal=True)
        out.sum().backward()

    return run


def _exercise_case(quick: bool):
    import torch

    from transformer.attention import multi_head_attention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(32, 32, 8, 64, generator=gen) for _ in "qkv")
    mask = torch.rand(32, 32, 32, generator=gen) < 0.2
    calls = 2 if quick else 20

    def run() -> None:
        for _ in range(calls):
            multi_head_attention(q, k, v, mask)

    return run


def _build(case: str, quick: bool):
    if case in ("step", "step-base"):
        return _step_case(quick, base=case == "step-base")
    if case in ("greedy", "beam4"):
        return _decode_case(quick, beam=1 if case == "greedy" else 4)
    cases = {"encode": _encode_case, "attention": _attention_case, "exercise": _exercise_case}
    return cases[case](quick)


def child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    _tune_malloc()
    fn = _build(args.child, args.quick)
    seconds = median_seconds(fn, args.iters, args.warmup)
    print(json.dumps({"case": args.child, "seconds": seconds}))


# ---- the parent: worktrees, alternation, the table ---------------------------------------


def _checkout(rev: str, tmp: Path, name: str) -> tuple[Path, bool]:
    """(directory holding the revision's src/, whether it is a worktree made here)."""
    if Path(rev).is_dir():
        return Path(rev).resolve(), False
    path = tmp / name
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], check=True)
    return path, True


def _time_once(root: Path, case: str, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case]
    cmd += ["--iters", str(args.iters), "--warmup", str(args.warmup)]
    cmd += ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
    if done.returncode:
        raise SystemExit(f"{case} at {root} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def compare(args: argparse.Namespace) -> list[dict]:
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    made: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="fast-guard-") as tmp:
        try:
            roots = {}
            for name, rev in (("base", args.base), ("head", args.head)):
                roots[name], is_new = _checkout(rev, Path(tmp), name)
                made += [roots[name]] if is_new else []
            rows = [_compare_case(case, roots, args) for case in cases]
        finally:
            for path in made:
                subprocess.run(["git", "worktree", "remove", "--force", str(path)], check=False)
    return rows


def _compare_case(case: str, roots: dict[str, Path], args: argparse.Namespace) -> dict:
    times: dict[str, list[float]] = {"base": [], "head": []}
    for r in range(args.repeats):
        for name in ("base", "head") if r % 2 == 0 else ("head", "base"):
            times[name].append(_time_once(roots[name], case, args))
    base, head = statistics.median(times["base"]), statistics.median(times["head"])
    row = {"case": case, "base_s": base, "head_s": head, "speed": base / head, **times}
    print(
        f"| {case} | {base * 1e3:.1f} | {head * 1e3:.1f} | {row['speed']:.3f} | "
        f"{'FELL > 5%' if row['speed'] < SLOWER else 'ok'} |",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", nargs="?", help="git revision or checkout directory")
    parser.add_argument("head", nargs="?", help="git revision or checkout directory")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--iters", type=int, default=5, help="timed calls per subprocess")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: default)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not (args.base and args.head):
        parser.error("BASE and HEAD are required")
    if min(args.repeats, args.iters) < 1 or args.warmup < 0:
        parser.error("--repeats and --iters must be >= 1, --warmup >= 0")
    print(f"BASE {args.base}, HEAD {args.head}: median of {args.repeats} alternating rounds, "
          f"each the median of {args.iters} calls; threads {args.threads}")  # fmt: skip
    print("| case | BASE ms | HEAD ms | HEAD speed / BASE | verdict |")
    print("|---|---:|---:|---:|---|")
    rows = compare(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    fell = [r["case"] for r in rows if r["speed"] < SLOWER]
    print(f"\n{'fell by more than 5%: ' + ', '.join(fell) if fell else 'no figure fell by > 5%'}")


if __name__ == "__main__":
    main()
