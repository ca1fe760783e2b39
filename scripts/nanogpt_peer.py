"""The GPT issue's peer: nanoGPT on Tiny Shakespeare, fitted to a time budget and scored as ours.

Runs `../shared/peers/nanogpt/run.sh` (nanoGPT's own `train.py` and `model.py`, unchanged but
for the harness's wall-clock stop) in three steps:

1. a probe: `--probe-iters` iterations with the given settings (`--probe-s` seconds at most);
   the median iteration time (its log's `time ...ms`, the first 5 iterations dropped) and the
   cost of one of its evaluations (iteration 0's time less the median, since nanoGPT
   evaluates before the step);
2. the run: `--max_iters` = `--lr_decay_iters` fitted so that the iterations and the
   `--evals` + 1 evaluations fill `--minutes` at `--margin` times the probe's iteration time
   (nanoGPT's cosine then ends at the budget, as ours does with `max_steps = "auto"`; the
   margin absorbs a host that slows down mid-run), `--eval_interval` = max_iters / evals,
   so the last evaluation (and checkpoint) falls on the last iteration. The harness's stop at
   1.1 × the budget is a guard: nanoGPT saves no checkpoint there, so a cut run is scored at
   its last evaluation;
3. the score: nanoGPT's checkpoint over the WHOLE validation split with
   `transformer.evaluation.lm.stream_nll`, the function that scores our own runs
   (`transformer evaluate RUN`), with the model's own context: nats per character.

    python scripts/nanogpt_peer.py --work runs/nanogpt-laptop --minutes 20 -- \\
        --n_layer=4 --n_head=4 --n_embd=128 --block_size=64 --batch_size=12 --dropout=0.0
    python scripts/nanogpt_peer.py --work runs/nanogpt-default --minutes 20     # its 6x384
    python scripts/nanogpt_peer.py --work runs/nanogpt-laptop --score-only      # step 3 again

`results.json` under `--work` keeps the probe, the fitted figures, nanoGPT's own final
estimate (`eval_iters` random blocks) and the whole-split score. nanoGPT computes in float32
on a CPU (its autocast context is off for `device=cpu`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from transformer.evaluation.lm import stream_nll

PEER = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "nanogpt"
ITER = re.compile(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms")
FINAL = re.compile(r"val loss ([\d.]+)")


def run_peer(work: Path, minutes: float, overrides: list[str], log: Path) -> list[str]:
    """Run nanoGPT's run.sh; its output goes to `log` and is returned as lines."""
    cmd = ["bash", str(PEER / "run.sh"), str(work), f"{minutes}", *overrides]
    env = dict(os.environ, PYTHON=sys.executable)
    with open(log, "w", encoding="utf-8") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=True)
    return log.read_text(encoding="utf-8").splitlines()


def probe(work: Path, iters: int, seconds: float, overrides: list[str]) -> dict[str, float]:
    """Median seconds per iteration and seconds per evaluation from a short run."""
    settings = [*overrides, "--log_interval=1", f"--max_iters={iters}", f"--lr_decay_iters={iters}"]
    lines = run_peer(work, seconds / 60, settings, work / "probe.log")
    times = {int(m[1]): float(m[2]) / 1000 for m in map(ITER.match, lines) if m}
    steady = [t for i, t in times.items() if i >= 5]
    if len(steady) < 5:
        raise SystemExit(f"the probe ran {len(times)} iterations: give it more --probe-s")
    iter_s = statistics.median(steady)
    return {"iter_s": iter_s, "eval_s": max(times[0] - iter_s, 0.0), "probe_iters": len(times)}


def fit(minutes: float, iter_s: float, eval_s: float, evals: int) -> tuple[int, int]:
    """(max_iters, eval_interval): a multiple of `evals`; iterations and evals fill `minutes`.

    Fewer evaluations than `evals` where they would take over a tenth of the budget (nanoGPT
    evaluates at iteration 0 too): a large model on a CPU spends minutes on each."""
    eval_share = minutes * 60 / 10  # seconds all evaluations may take
    evals = max(1, min(evals, math.floor(eval_share / max(eval_s, 1e-9)) - 1))
    spare = minutes * 60 - (evals + 1) * eval_s
    interval = max(1, math.floor(spare / iter_s / evals))
    return interval * evals, interval


def score(work: Path) -> dict[str, float]:
    """nanoGPT's checkpoint on the whole validation split, as `transformer evaluate` scores ours."""
    sys.path.insert(0, str(work))
    from model import GPT, GPTConfig  # nanoGPT's model.py, copied into the work dir by run.sh

    ckpt = torch.load(work / "out-shakespeare-char" / "ckpt.pt", map_location="cpu")
    model = GPT(GPTConfig(**ckpt["model_args"]))
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    model.load_state_dict(state)
    model.eval()
    val = np.fromfile(work / "data" / "shakespeare_char" / "val.bin", dtype=np.uint16)
    context = ckpt["model_args"]["block_size"]

    def logits(idx: torch.Tensor) -> torch.Tensor:  # with targets, nanoGPT returns every position
        return model(idx, torch.zeros_like(idx))[0]

    ppl = stream_nll(logits, val.astype(np.int64), context)
    return {
        "iter_num": ckpt["iter_num"],
        "val_nats_per_char": ppl.nll / ppl.tokens,
        "val_tokens": ppl.tokens,
        "context": context,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="nanoGPT's working directory")
    ap.add_argument("--minutes", type=float, default=20.0, help="the training budget")
    ap.add_argument("--probe-iters", type=int, default=200, help="iterations of the timing probe")
    ap.add_argument("--probe-s", type=float, default=300.0, help="the probe's time limit")
    ap.add_argument("--evals", type=int, default=8, help="evaluations after iteration 0")
    ap.add_argument(
        "--margin", type=float, default=1.1, help="fit to the probe's iteration time x this"
    )
    ap.add_argument("--eval-iters", type=int, default=20, help="nanoGPT's batches per estimate")
    ap.add_argument("--score-only", action="store_true", help="only score the checkpoint")
    ap.add_argument("overrides", nargs="*", help="nanoGPT --key=value settings (after --)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / "results.json"
    if args.score_only:
        results = json.loads(out.read_text()) if out.exists() else {}
        results["score"] = score(args.work)
        out.write_text(json.dumps(results, indent=1))
        print(json.dumps(results["score"]))
        return
    settings = [*args.overrides, f"--eval_iters={args.eval_iters}"]
    timing = probe(args.work, args.probe_iters, args.probe_s, settings)
    max_iters, interval = fit(
        args.minutes, timing["iter_s"] * args.margin, timing["eval_s"], args.evals
    )
    print(
        f"probe: {timing['iter_s'] * 1000:.1f} ms/iter, {timing['eval_s']:.1f} s/eval "
        f"-> max_iters {max_iters}, eval_interval {interval}",
        flush=True,
    )
    fitted = [
        f"--max_iters={max_iters}",
        f"--lr_decay_iters={max_iters}",
        f"--eval_interval={interval}",
    ]
    t0 = time.time()
    lines = run_peer(args.work, args.minutes * 1.1, [*settings, *fitted], args.work / "train.log")
    finals = [float(m[1]) for m in map(FINAL.search, lines) if m]
    results = {
        "settings": settings + fitted,
        "minutes_budget": args.minutes,
        **timing,
        "max_iters": max_iters,
        "eval_interval": interval,
        "wall_minutes": (time.time() - t0) / 60,
        "nanogpt_last_val_estimate": finals[-1],
        "cpu": os.cpu_count(),
        "torch": torch.__version__,
    }
    results["score"] = score(args.work)
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
