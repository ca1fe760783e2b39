"""The training loop: Adam + Noam schedule + label smoothing, with checkpoints that resume
bit-exactly (Vaswani et al., 2017, Section 5).

`Trainer.fit` runs optimizer steps (`step.Stepping`: accumulation, the per-token mean over the
whole step, the NaN/inf guard), logs, validates and checkpoints on their intervals, and stops at
train.max_steps, train.max_minutes (`budget`, which also fits max_steps "auto") or a signal.
The state saved with each checkpoint (optimizer, step, data position = (epoch, next batch), RNG
states, best validation figure) makes a resumed run repeat exactly what the uninterrupted run
would have done; on CPU the weights are bit-identical. Ctrl-C or SIGTERM finishes the current
step, saves and returns (a second signal stops at once). `train.max_nonfinite_steps` skipped
steps in a row stop the run, leaving the last good checkpoint untouched. Weights with a NaN/inf
are never saved, a NaN validation figure is never a best, and resume falls back past a damaged
checkpoint to the newest one that verifies.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from transformer import runtime
from transformer.fast import optimize, tune_malloc
from transformer.runtime import native_bf16, use_bf16_autocast
from transformer.training import budget, distributed, guard
from transformer.training import checkpoint as ckpt
from transformer.training.budget import ScheduleFitting
from transformer.training.config import RunConfig
from transformer.training.data import TrainData
from transformer.training.distributed import NullLog, World
from transformer.training.errors import RunDirError, TrainingError
from transformer.training.guard import StopFlag as _StopFlag
from transformer.training.logging import MetricsLog
from transformer.training.optim import build_optimizer
from transformer.training.rng import rng_state, set_rng_state
from transformer.training.step import Meter, Stepping, StepStats
from transformer.training.task import task_for
from transformer.training.val_bleu import probe_bleu

log = logging.getLogger("transformer.training")

# Raised by the loop and its step; importable from here as before the split.
__all__ = ["RunDirError", "StepStats", "TrainResult", "Trainer", "TrainingError", "resolve_device"]


@dataclass
class TrainResult:
    step: int
    status: str  # "finished", "time limit" (train.max_minutes) or "interrupted"
    val: dict[str, float] | None
    run_dir: Path


def resolve_device(name: str) -> torch.device:
    """`runtime.resolve_device` for train.device: its errors name the field."""
    try:
        return runtime.resolve_device(name)
    except ValueError as err:
        raise TrainingError(f"train.device = {name!r} {err}") from None


class Trainer(Stepping, ScheduleFitting):
    """Trains `model` on `data` as `run` says, checkpointing into `run_dir`."""

    def __init__(
        self,
        run: RunConfig,
        run_dir: str | Path,
        data: TrainData,
        model: nn.Module,
        resume: bool = False,
        tensorboard: bool = True,
        fast: bool = True,
        world: World | None = None,
    ) -> None:
        """`fast`: run the model through the fast engine (`transformer.fast.optimize`, which
        keeps its weights and checkpoints as they are); False runs the plain reference core.
        `world`: this process's place among torchrun's processes (`distributed`; the process
        group must be started), a world of one by default."""
        self.run, self.data, self.resume = run, data, resume
        self.run_dir = Path(run_dir)
        self.world = world or World()
        self.device = distributed.rank_device(resolve_device(run.train.device), self.world)
        if run.train.threads:
            torch.set_num_threads(run.train.threads)
        if fast and self.device.type == "cpu":
            tune_malloc()  # reuse heap pages for the large logits tensors (fast/malloc.py)
        self.model = model.to(self.device)
        if fast:
            optimize(self.model)
        # What the training forward runs: DistributedDataParallel over several processes, and
        # torch.compile with train.compile; validation and decoding run self.model, eagerly.
        self.net = distributed.wrap(self.model, self.world, self.device)
        if run.train.compile:
            self.net = torch.compile(self.net)
        self.task = task_for(run.data.task)  # how a batch is scored and counted
        self.optimizer = build_optimizer(self.model, run.train)
        self.autocast = use_bf16_autocast(run.train.amp, self.device)
        if self.autocast and not native_bf16(self.device):
            log.warning(
                "train.amp = %r: %s has no bf16 in hardware, so bf16 autocast is emulated and "
                "much slower than float32 (25x a step on an AVX2 CPU); use 'native' or 'off'",
                run.train.amp,
                self.device.type.upper(),
            )
        self.step = self.epoch = self.batch_index = 0
        self.best_val: float | None = None  # selection key of the best checkpoint (higher wins)
        self._batches = None  # iterator over training batches from (epoch, batch_index)
        self._tensorboard = tensorboard
        self._saved_step = -1
        self.last_val: dict[str, float] | None = None
        self._timing: budget.Timing | None = None  # set when max_steps "auto" was fitted
        self.nonfinite_steps = 0  # steps skipped for a NaN/inf loss or gradient, in all
        self.best_record: dict[str, Any] | None = None  # what best.json holds

    # ---- validation and checkpoints ------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """Mean per-token smoothed loss, NLL and perplexity over the validation batches."""
        if self.data.val is None:
            return None
        self.model.eval()
        loss = nll = 0.0
        tokens = 0
        for batch in self.data.val:
            l_sum, n_sum = self._forward(batch)
            loss, nll = loss + float(l_sum), nll + float(n_sum)
            tokens += self.task.n_targets(batch)
        n = max(tokens, 1)
        return {"val_loss": loss / n, "val_nll": nll / n, "val_ppl": math.exp(min(nll / n, 700))}

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "best_key": self.best_val,
            "best": self.best_record,
            "nonfinite_steps": self.nonfinite_steps,
        }

    def save(self, val: dict[str, float] | None = None) -> Path | None:
        """Checkpoint the current step (a new best when `val` improves on it). Weights with a
        NaN/inf are a TrainingError and nothing is written. Rank 0 alone writes (None else)."""
        if not self.world.is_main:
            return None
        weights = self.model.state_dict()
        bad = ckpt.nonfinite(weights)
        if bad:
            raise TrainingError(
                f"the weights hold NaN/inf values at step {self.step} ({', '.join(bad[:3])}); "
                f"not saved; {self._last_good()}"
            )
        is_best = self._improves(val)
        if is_best:
            self.best_val = _selection_key(val)
            self.best_record = {"step": self.step, **_best_info(val)}
        self._saved_step = self.step
        return ckpt.save_checkpoint(
            self.run_dir,
            self.step,
            weights,
            self.state(),
            self.run.train.keep_last,
            best_info=_best_info(val) if is_best else None,
        )

    def restore(self) -> None:
        """Load the newest checkpoint of the run directory that verifies (`ckpt.verify`);
        newer damaged ones are logged, set aside as `damaged-step-N` and skipped. Rank 0
        chooses (and sets aside); the other ranks load the checkpoint it loaded."""
        path = distributed.lead(self.world, self._restore_newest)
        if not self.world.is_main:
            self._load(path)
        self._batches = None
        self._saved_step = self.step

    def _restore_newest(self) -> Path:
        if not ckpt.step_dirs(self.run_dir):
            raise TrainingError(f"{self.run_dir}: no checkpoint to resume from")
        loaded: list[Path] = []
        if guard.load_newest_good(self.run_dir, lambda p: (self._load(p), loaded.append(p))):
            guard.rewind_best_json(self.run_dir, self.step, self.best_record)
        return loaded[-1]

    def _load(self, path: Path) -> None:
        ckpt.load_into(self.model, path / "model.safetensors")
        state = ckpt.load_state(path / "state.pt")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.batch_index, self.best_val = int(state["batch_index"]), state.get("best_key")
            self.best_record = state.get("best")
            self.nonfinite_steps = int(state.get("nonfinite_steps", 0))
            set_rng_state(state["rng"])
        except (KeyError, ValueError, TypeError) as err:
            raise ckpt.CheckpointError(f"{path / 'state.pt'}: incomplete state ({err})") from None

    # ---- the loop ------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train until train.max_steps, train.max_minutes or Ctrl-C; returns the final step
        and status."""
        t = self.run.train
        if self.resume:
            self.restore()
        else:
            torch.manual_seed(t.seed)
        status, self.last_val = "finished", None
        main = self.world.is_main  # rank 0 alone logs, shows progress and writes
        bar = tqdm(
            total=t.max_steps if t.max_steps != "auto" else None,
            initial=self.step,
            disable=not t.progress or not main,
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        metrics = MetricsLog(self.run_dir, self.step, self._tensorboard) if main else NullLog()
        with _StopFlag() as flag, metrics as log:
            if not self.resume:
                log.write("data", 0, **self.data.summary())
            started = time.monotonic()  # the budget clock (training.budget: what it counts)
            deadline = started + 60.0 * t.max_minutes if t.max_minutes else math.inf
            if t.max_steps == "auto":
                self._fit_schedule(log, started)
                t, bar.total = self.run.train, self.run.train.max_steps
            meter, first_step, since = Meter(), self.step, time.monotonic()
            pace = budget.Pace(t.val_every, self.step)  # the steps' own time, for re-plans
            while self.step < t.max_steps:
                if stop := self._stop(flag, deadline):  # rank 0's decision, on every rank
                    status = stop
                    break
                try:
                    begin = time.monotonic()
                    stats = self.train_step()
                    pace.add(time.monotonic() - begin)
                except TrainingError as err:
                    log.write("event", self.step, message=str(err))
                    bar.close()
                    raise
                meter.add(*stats)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{stats.loss / max(stats.tokens, 1):.3f}",
                    lr=f"{self.lr(self.step):.2e}",
                    refresh=False,
                )
                if self._periodic(meter, log, bar):
                    meter = Meter()
                    if self._replan(log, pace, deadline):  # the machine's pace drifted
                        t, bar.total = self.run.train, self.run.train.max_steps
            bar.close()
            if status == "time limit" and main:
                self._warn_cut(log, first_step, since)
            self._finish(status, log)
        return TrainResult(self.step, status, self.last_val, self.run_dir)

    def _stop(self, flag: _StopFlag, deadline: float) -> str | None:
        """None to go on, or why to stop ("interrupted", "time limit"), as rank 0 says."""
        stop = 1 if flag.stop else 2 if time.monotonic() >= deadline else 0
        return (None, "interrupted", "time limit")[
            distributed.decide(stop, self.world, self.device)
        ]

    def _finish(self, status: str, log: MetricsLog) -> None:
        """Final validation (unless it just ran) and checkpoint (unless just saved)."""
        validated = self.last_val is not None and self.last_val.get("step") == self.step
        completed = status != "interrupted"
        if completed and not validated:
            self._validate_and_log(log)
        val = self.last_val if completed else None
        if self._saved_step != self.step:
            self.save(val)
        elif self._improves(val):
            self.best_val = _selection_key(val)
            self.best_record = {"step": self.step, **_best_info(val)}
            ckpt.write_json(
                self.run_dir / "checkpoints" / "best.json", {"step": self.step, **_best_info(val)}
            )
        log.write("event", self.step, message=f"training {status} at step {self.step}")

    def _validate_and_log(self, log: MetricsLog) -> dict[str, float] | None:
        """Validation (and the BLEU probe) on rank 0; None on the others."""
        if not self.world.is_main:
            return None
        val = self.validate()
        probe = self.data.bleu_probe
        if val is not None and probe is not None:
            max_positions = self.run.model.max_len
            val["val_bleu"] = probe_bleu(self.model, probe, max_positions, self.device)
        if val is not None:
            log.write("val", self.step, **val)
            self.last_val = {**val, "step": self.step}
        return val

    def _periodic(self, meter: Meter, log: MetricsLog, bar: tqdm) -> bool:
        """Logging, validation and saving that fall on the current step; True if logged."""
        t, val = self.run.train, None
        logged = self.step % t.log_every == 0
        if logged:
            summary = meter.summary()
            log.write("train", self.step, lr=self.lr(self.step), epoch=self.epoch, **summary)
            bar.set_postfix(
                loss=f"{summary['loss']:.3f}",
                lr=f"{self.lr(self.step):.2e}",
                tok_s=f"{summary['tokens_per_s']:.0f}",
            )
        if self.step % t.val_every == 0:
            val = self._validate_and_log(log)
        if self.step % t.save_every == 0 or self._improves(val):
            self.save(val)  # a new best is saved even between the periodic checkpoints
        return logged

    def _improves(self, val: dict[str, float] | None) -> bool:
        """Whether `val` is a new best; a NaN/inf figure never is."""
        if val is None or not math.isfinite(key := _selection_key(val)):
            return False
        return self.best_val is None or key >= self.best_val


def _selection_key(val: dict[str, float]) -> float:
    """Higher is better: validation BLEU when measured (train.val_bleu > 0), else -NLL."""
    return val["val_bleu"] if "val_bleu" in val else -val["val_nll"]


def _best_info(val: dict[str, float]) -> dict[str, float]:
    """What best.json records besides the step."""
    keys = ("val_loss", "val_nll", "val_bleu")
    return {k: val[k] for k in keys if k in val}
