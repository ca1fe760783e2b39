"""Data-parallel training through torchrun (gloo on the CPU): 2 processes with half of each
step's batches reach the weights of 1 process with all of them, a run resumes with another
number of processes, the budgeted schedule and validation BLEU are decided by rank 0, and a
rank that dies takes the job down (no hang) with a checkpoint to resume from."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformer.cli import main
from transformer.training.distributed import DistributedError, World, batches_per_rank, share

REPO = Path(__file__).resolve().parents[1]
CONFIG = """
[model]
preset = "tiny"
src_vocab_size = 16
tgt_vocab_size = 16
d_model = 16
n_heads = 2
d_ff = 32
n_encoder_layers = 1
n_decoder_layers = 1
dropout = 0.0
[data]
task = "copy"
copy_train_size = 256
copy_val_size = 16
max_tokens = 96
[train]
max_steps = {steps}
warmup = 4
accum_steps = 2
log_every = 1
val_every = 3
save_every = 3
progress = false
device = "cpu"
threads = 1
"""

# Stated tolerance: 2 ranks add the same two per-batch gradients that 1 process accumulates
# (a + b either way, and the x2 / 2 of DDP's mean is exact), so the weights come out
# bit-identical here; the bound allows a few float32 ulps for other orders (N > 2).
ATOL = 1e-6
DIE_TIMEOUT_S = 120  # a rank that dies ends the whole job within this (no hang)


def test_share_is_disjoint_and_covers_every_batch():
    batches = list(range(12))
    shares = [share(batches, World(rank, 3)) for rank in range(3)]
    assert sorted(b for s in shares for b in s) == batches
    assert all(len(s) == batches_per_rank(12, World(0, 3)) for s in shares)
    with pytest.raises(DistributedError, match="accum_steps"):
        batches_per_rank(3, World(0, 2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(procs: int, args: list[str], launcher: list[str] = (), timeout: float = 300):
    """`python -m transformer ARGS` (or a script), under torchrun when procs > 1."""
    if procs > 1:
        run = ["-m", "torch.distributed.run", "--nproc_per_node", str(procs), *launcher]
        if "--rdzv-backend" not in launcher:
            run += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
        args = run + args
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _config(tmp: Path, steps: int | str, *extra: str) -> Path:
    cfg = tmp / f"steps-{steps}-{len(extra)}.toml"
    text = CONFIG.format(steps=json.dumps(steps) if isinstance(steps, str) else steps)
    cfg.write_text(text + "".join(f"{line}\n" for line in extra))
    return cfg


def _train(tmp: Path, out: str, procs: int, steps: int, resume: bool = False) -> Path:
    args = ["-m", "transformer", "train", str(_config(tmp, steps)), "--out", str(tmp / out)]
    done = _launch(procs, args + (["--resume"] if resume else []))
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / out


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("kind") == "train"]


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=ATOL, rtol=0, msg=name)


def _files(run: Path) -> list[str]:
    """The run directory's files; TensorBoard's event files are named by host and pid."""
    names = (p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    return sorted(re.sub(r"events\.out\.tfevents\..*", "events", n) for n in names)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("one"), "run", 1, 6)


def test_two_processes_equal_one(single, tmp_path):
    two = _train(tmp_path, "run", 2, 6)
    _close(_weights(two), _weights(single))
    assert _losses(two) == pytest.approx(_losses(single), abs=ATOL)  # the global loss
    assert len(_losses(two)) == 6
    # rank 0 alone writes: the same files as one process (one log, one TensorBoard file)
    assert _files(two) == _files(single)
    # its checkpoints average as any run's (Section 6.1): the element-wise mean of the last 2
    out = tmp_path / "avg.safetensors"
    assert main(["average", str(two), "--last", "2", "--out", str(out)]) == 0
    a, b = (load_file(p / "model.safetensors") for p in sorted(two.glob("checkpoints/step-*"))[-2:])
    _close(load_file(out), {name: (a[name] + b[name]) / 2 for name in a})


def test_resume_one_process_with_two(single, tmp_path):
    """1 -> 2 here; 2 -> 1 is the resume of the test of a rank that dies, below."""
    _train(tmp_path, "run", 1, 3)
    resumed = _train(tmp_path, "run", 2, 6, resume=True)
    _close(_weights(resumed), _weights(single))
    assert _losses(resumed) == pytest.approx(_losses(single), abs=ATOL)


def test_accum_steps_must_be_a_multiple_of_the_processes(tmp_path):
    from transformer.config import ConfigError
    from transformer.training.config import RunConfig
    from transformer.training.run import train

    run = RunConfig.from_toml(_config(tmp_path, 4), ["train.accum_steps=3"])
    message = r"train\.accum_steps \(3\) must be a multiple of the number of processes \(2\)"
    with pytest.raises(ConfigError, match=message):
        train(run, tmp_path / "r", world=World(0, 2))
    assert not (tmp_path / "r").exists()  # checked before anything started


def test_budgeted_schedule_and_val_bleu_are_rank_0s(tmp_path):
    """max_steps "auto" is fitted from rank 0's timing and broadcast; validation BLEU and
    the best checkpoint are rank 0's; both ranks stop at the same step."""
    cfg = _config(tmp_path, "auto")
    sets = ["train.max_minutes=0.2", "train.schedule='linear'", "train.val_bleu=4",
            "train.val_every=40", "train.save_every=1000", "train.log_every=20"]  # fmt: skip
    args = ["-m", "transformer", "train", str(cfg), "--out", str(tmp_path / "r")]
    done = _launch(2, args + [a for s in sets for a in ("--set", s)])
    assert done.returncode == 0, done.stderr[-3000:]
    fitted = int(re.search(r"^max_steps = (\d+)$", (tmp_path / "r" / "config.toml").read_text(),
                           re.M).group(1))  # fmt: skip
    # Both ranks stop at rank 0's step: the fitted one, or (a machine that slowed down during
    # the run, warned about) where rank 0's time cap fell.
    status, step = re.search(r"training (finished|time limit) at step (\d+);", done.stdout).groups()
    assert f"rank 1 of 2: training {status} at step {step}\n" in done.stderr
    assert int(step) == fitted if status == "finished" else "slowed down" in done.stderr
    rows = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    [schedule] = [r for r in rows if r["kind"] == "schedule"]
    replans = [r for r in rows if r["kind"] == "replan"]  # rank 0's pace re-planned it, if so
    assert (replans[-1] if replans else schedule)["max_steps"] == fitted > schedule["warmup"]
    vals = [r for r in rows if r["kind"] == "val"]
    assert vals and all("val_bleu" in r for r in vals) and vals[-1]["step"] == int(step)
    best = json.loads((tmp_path / "r" / "checkpoints" / "best.json").read_text())
    assert best["val_bleu"] == max(r["val_bleu"] for r in vals)


def test_a_rank_that_dies_stops_the_job_and_the_run_resumes(single, tmp_path):
    """Rank 1 exits (as a crash: no message) before step 5: rank 0's next collective fails
    at once, it says so in one line naming the checkpoint, torchrun stops the job and names
    the rank; the run then resumes from step 3 (here with one process) to the same weights."""
    cfg = _config(tmp_path, 6)
    child = [str(REPO / "tests" / "ddp_child.py"), "1", "5"]
    args = [*child, "train", str(cfg), "--out", str(tmp_path / "r")]
    done = _launch(2, args, timeout=DIE_TIMEOUT_S)
    assert done.returncode != 0
    assert "rank 0 of 2: another process stopped answering" in done.stderr
    assert "the last checkpoint is" in done.stderr and "step-00000003" in done.stderr
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)\s*exitcode\s*:\s*3", done.stderr)
    resumed = _train(tmp_path, "r", 1, 6, resume=True)
    _close(_weights(resumed), _weights(single))


@pytest.mark.slow
def test_max_restarts_resumes_by_itself(single, tmp_path):
    """`torchrun --max-restarts 1` (c10d rendezvous): the restarted worker group resumes from
    the last checkpoint and ends with the uninterrupted run's weights."""
    cfg = _config(tmp_path, 6)
    child = [str(REPO / "tests" / "ddp_child.py"), "1", "5"]
    launcher = ["--max-restarts", "1", "--rdzv-backend", "c10d",
                "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]  # fmt: skip
    args = [*child, "train", str(cfg), "--out", str(tmp_path / "r")]
    done = _launch(2, args, launcher, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torchrun restart 1: resuming from the last checkpoint" in done.stderr
    _close(_weights(tmp_path / "r"), _weights(single))
