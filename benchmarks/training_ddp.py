"""`transformer bench training --ddp N`: data-parallel training on the CPU, in one run.

Two arms train the same config with the same tokens per update (`train.accum_steps` = N
batches a step), alternating, `--repeats` times each (median reported):
- N processes x 1 thread: `torchrun --nproc_per_node N`, each rank 1 of the step's batches,
  gradients all-reduced by gloo (`transformer.training.distributed`);
- 1 process x N threads: the same N batches accumulated in one process.
Each arm is a fresh subprocess (this module run as a script) that builds the data from the
cache under `--work` (prepared once, first), runs `--warmup-steps` untimed and `--steps`
timed `Trainer.train_step`s and prints one JSON line: real target tokens/s of the whole
step. The ratio N x 1 / 1 x N is printed whichever way it goes, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def compare(args: argparse.Namespace) -> int:
    """Prepare the data once, then alternate the two arms; print the medians and the ratio."""
    from transformer.training.config import RunConfig
    from transformer.training.data import build_data

    n = args.ddp
    common = [*_overrides(args), f"train.accum_steps={n}"]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    build_data(RunConfig.from_toml(args.config, common), work, progress=False)  # the cache
    arms = {f"{n} processes x 1 thread": (n, 1), f"1 process x {n} threads": (1, n)}
    results: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(args.repeats):
        for arm, (procs, threads) in arms.items():
            results[arm].append(_arm(args, procs, [*common, f"train.threads={threads}"]))
    print(f"config {args.config} {' '.join(args.set)}; {n} batches a step; "
          f"{args.steps} timed steps x {args.repeats} repeats, alternating")  # fmt: skip
    print("| arm | real target tok/s (median) | runs |")
    print("|---|---:|---|")
    med = {arm: statistics.median(rows) for arm, rows in results.items()}
    for arm, rows in results.items():
        print(f"| {arm} | {med[arm]:,.0f} | {', '.join(f'{r:,.0f}' for r in rows)} |")
    ddp, threads = med[f"{n} processes x 1 thread"], med[f"1 process x {n} threads"]
    print(f"{n} processes x 1 thread / 1 process x {n} threads: {ddp / threads:.2f}x tokens/s")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    sets = [*args.set, "train.progress=false", "train.device='cpu'"]
    if args.data_dir:
        sets.append(f"data.data_dir={str(args.data_dir)!r}")
    return sets


def _arm(args: argparse.Namespace, procs: int, sets: list[str]) -> float:
    """One arm's run in fresh processes; its tokens/s."""
    me = [sys.executable]
    if procs > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        me += ["-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip
    me += [__file__, args.config, args.work, str(args.steps), str(args.warmup_steps), *sets]
    threads = 1 if procs > 1 else args.ddp
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(me, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"bench arm failed ({procs} processes):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["tok_s"]


def _worker(config: str, work: str, steps: int, warmup: int, sets: list[str]) -> None:
    """One arm: a Trainer (DDP under torchrun), timed steps, rank 0 prints the tokens/s."""
    import tempfile

    import torch

    from transformer.training import distributed
    from transformer.training.config import RunConfig
    from transformer.training.data import build_data
    from transformer.training.task import task_for
    from transformer.training.trainer import Trainer

    world = distributed.World.from_env()
    run = RunConfig.from_toml(config, sets)
    distributed.start(world, torch.device("cpu"))
    data, model_cfg = build_data(run, work, progress=False)
    run = RunConfig(model=model_cfg, data=run.data, train=run.train)
    torch.manual_seed(run.train.seed)
    model = task_for(run.data.task).build_model(model_cfg)
    out = tempfile.mkdtemp(dir=work)
    trainer = Trainer(run, out, data, model, tensorboard=False, world=world)
    for _ in range(warmup):
        trainer.train_step()
    distributed.barrier(world)
    start, tokens = time.perf_counter(), 0
    for _ in range(steps):
        tokens += trainer.train_step().tokens  # the whole step's target tokens
    seconds = time.perf_counter() - start
    if world.is_main:
        print(json.dumps({"tok_s": tokens / seconds, "s_step": seconds / steps}))
    distributed.stop()


if __name__ == "__main__":
    a = sys.argv[1:]
    _worker(a[0], a[1], int(a[2]), int(a[3]), a[4:])
