"""What keeps a run safe from faults: signals that stop it cleanly, the check of a step's
loss and gradient for NaN/inf, and resuming from the newest checkpoint that verifies.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transformer import durable
from transformer.training import checkpoint as ckpt

log = logging.getLogger("transformer.training")


class StopFlag:
    """SIGINT (Ctrl-C) or SIGTERM (a scheduler, `timeout`) sets a flag checked between steps,
    so the loop saves and returns; a second signal of either kind interrupts at once
    (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stop = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop:
            raise KeyboardInterrupt(f"second signal ({signal.Signals(signum).name})")
        self.stop = True
        self.signal_name = signal.Signals(signum).name
        log.warning("%s: finishing this step, saving a checkpoint and stopping (send it "
                    "again to stop at once)", self.signal_name)  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def grad_norm(model: nn.Module) -> torch.Tensor:
    """The 2-norm of every gradient of `model` together, a () tensor (one reduction)."""
    return nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])


def nonfinite_or_clip(
    model: nn.Module,
    loss_value: float,
    clip_norm: float,
    norm: torch.Tensor | None = None,
    finite: bool | None = None,
) -> str | None:
    """What is NaN/inf in this step's loss or gradient, or None when all is finite (and then
    the gradient is clipped to `clip_norm` when > 0, as `clip_grad_norm_` does). `norm`: the
    gradient norm if already taken (`grad_norm`); `finite`: whether it is finite on every
    rank (over several processes, all-reduced so that every rank decides alike)."""
    if not math.isfinite(loss_value):
        return f"loss became {loss_value}"
    norm = grad_norm(model) if norm is None else norm
    here = math.isfinite(float(norm))
    if not (here if finite is None else finite):
        what = float(norm) if not here else "NaN/inf on another rank"
        return f"gradient norm became {what} (loss {loss_value:.4g})"
    if clip_norm > 0:
        nn.utils.clip_grads_with_norm_(model.parameters(), clip_norm, norm)
    return None


def load_newest_good(run_dir: Path, load: Callable[[Path], None]) -> list[str]:
    """`load` the newest checkpoint of `run_dir` that verifies (`ckpt.verify`) and loads;
    each newer one is logged with the reason, set aside as `damaged-step-N` (kept, never
    deleted) and skipped. RUN_DIR/model.safetensors is made the loaded one's weights.
    Returns the skipped ones; CheckpointError when none is left."""
    skipped = []
    for _, path in reversed(ckpt.step_dirs(run_dir)):
        problem = ckpt.verify(path)
        if problem is None:
            try:
                load(path)
                break
            except ckpt.CheckpointError as err:
                problem = str(err)
        aside = ckpt.set_aside(path)
        skipped.append(f"{path.name} ({problem})")
        log.warning("skipping checkpoint %s: %s; set aside as %s", path, problem, aside.name)
    else:
        raise ckpt.CheckpointError(f"{run_dir}: no checkpoint verifies: {'; '.join(skipped)}")
    if skipped:
        log.warning("resuming from %s; skipped %s", path.name, ", ".join(skipped))
    sync_latest(run_dir, path)
    return skipped


def sync_latest(run_dir: Path, step_dir: Path) -> None:
    """RUN_DIR/model.safetensors = the weights of the checkpoint resumed from (a kill between
    a checkpoint's rename and this copy, or a fallback past a damaged one, leaves it behind)."""
    latest, source = run_dir / "model.safetensors", step_dir / "model.safetensors"
    same_size = latest.is_file() and latest.stat().st_size == source.stat().st_size
    if same_size and latest.read_bytes() == source.read_bytes():
        return
    durable.copy_file(source, latest)


def rewind_best_json(run_dir: Path, step: int, record: dict[str, Any] | None) -> None:
    """After a fallback to `step`, best.json names the best as of that step (`record`)."""
    path = run_dir / "checkpoints" / "best.json"
    try:
        best = ckpt.best_step(run_dir)
    except ckpt.CheckpointError:
        best = step + 1
    if best is not None and best > step:
        if record is not None:
            ckpt.write_json(path, record)
        else:
            path.unlink()
