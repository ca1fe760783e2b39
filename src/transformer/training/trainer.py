"""The training loop: Adam + Noam schedule + label smoothing, with checkpoints that resume
bit-exactly (Vaswani et al., 2017, Section 5).

One optimizer step accumulates `accum_steps` batches; each batch's summed loss is divided by
the number of non-pad target tokens of the *whole step*, so the gradient is the per-token mean
however the tokens fall into batches. The state saved with each checkpoint (optimizer, step,
data position = (epoch, next batch), RNG states, best validation loss) makes a resumed run
repeat exactly what the uninterrupted run would have done; on CPU the weights are
bit-identical. Ctrl-C finishes the current step, saves and returns; a NaN/inf loss stops the
run before the optimizer step, leaving the last good checkpoint untouched.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from transformer.data import Batch
from transformer.runtime import native_bf16, tune_malloc, use_bf16_autocast
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.data import TrainData
from transformer.training.logging import MetricsLog
from transformer.training.optim import build_optimizer, set_lr
from transformer.training.schedule import cosine_lr, linear_lr, noam_lr
from transformer.training.task import task_for
from transformer.training.val_bleu import probe_bleu

log = logging.getLogger("transformer.training")


class TrainingError(RuntimeError):
    """The run cannot go on (the loss diverged; `RunDirError`: the run directory does not fit)."""


class RunDirError(TrainingError):
    """The run directory does not fit the request (a usage error: nothing was started)."""


@dataclass
class TrainResult:
    step: int
    status: str  # "finished", "time limit" (train.max_minutes) or "interrupted"
    val: dict[str, float] | None
    run_dir: Path


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"train.device = {name!r} but no CUDA device is available")
    return device


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from (dropout uses torch's global generator)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))


class _StopFlag:
    """SIGINT sets a flag checked between steps; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.stop = False
        self._previous = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.stop = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Meter:
    """Sums over one logging interval."""

    def __init__(self) -> None:
        self.loss = self.nll = 0.0
        self.tokens = self.pad = self.positions = 0
        self.start = time.perf_counter()

    def add(self, loss: float, nll: float, tokens: int, pad: int, positions: int) -> None:
        self.loss += loss
        self.nll += nll
        self.tokens += tokens
        self.pad += pad
        self.positions += positions

    def summary(self) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.start, 1e-9)
        n = max(self.tokens, 1)
        return {
            "loss": self.loss / n,
            "nll": self.nll / n,
            "ppl": math.exp(min(self.nll / n, 700.0)),
            "tokens_per_s": self.tokens / seconds,
            "padding": self.pad / max(self.positions, 1),
        }


class Trainer:
    """Trains `model` on `data` as `run` says, checkpointing into `run_dir`."""

    def __init__(
        self,
        run: RunConfig,
        run_dir: str | Path,
        data: TrainData,
        model: nn.Module,
        resume: bool = False,
        tensorboard: bool = True,
    ) -> None:
        self.run, self.data, self.resume = run, data, resume
        self.run_dir = Path(run_dir)
        self.device = resolve_device(run.train.device)
        if run.train.threads:
            torch.set_num_threads(run.train.threads)
        if self.device.type == "cpu":
            tune_malloc()  # reuse heap pages for the large logits tensors (runtime.py)
        self.model = model.to(self.device)
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

    # ---- data position -------------------------------------------------------------------
    def _next_batch(self) -> Batch:
        if self._batches is None:
            self._batches = self.data.train.iterate((self.epoch, self.batch_index))
        batch = next(self._batches)
        self.epoch, self.batch_index = batch.next_position
        return batch

    # ---- one optimizer step --------------------------------------------------------------
    def _forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed smoothed loss and NLL of one batch (`task.Seq2SeqTask` / `task.LMTask`)."""
        return self.task.loss(self.model, batch, self.run.model, self.device, self.autocast)

    def train_step(self) -> tuple[float, float, int, int, int]:
        """Accumulate `accum_steps` batches, clip, set the rate and step Adam.

        Returns (summed loss, summed NLL, target tokens, pad positions, all positions)."""
        batches = [self._next_batch() for _ in range(self.run.train.accum_steps)]
        n_tokens, n_pad, n_pos = self.task.counts(batches)
        loss_value, nll_value = self.accumulate(batches, n_tokens)
        if not math.isfinite(loss_value):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingError(self._diverged_message(loss_value))
        if self.run.train.clip_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.run.train.clip_norm)
        set_lr(self.optimizer, self.lr(self.step + 1))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_value, nll_value, n_tokens, n_pad, n_pos

    def accumulate(self, batches: list[Batch], n_tokens: int) -> tuple[float, float]:
        """Forward/backward every batch with its summed loss divided by `n_tokens` (the
        step's total), so the gradients add up to that of the per-token mean."""
        self.model.train()
        loss_total = torch.zeros((), device=self.device)
        nll_total = torch.zeros((), device=self.device)
        for batch in batches:
            loss, nll = self._forward(batch)
            (loss / max(n_tokens, 1)).backward()
            loss_total += loss.detach()
            nll_total += nll.detach()
        return float(loss_total), float(nll_total)

    def lr(self, step: int) -> float:
        t, d = self.run.train, self.run.model.d_model
        if t.schedule == "linear":
            return linear_lr(step, d, t.warmup, t.max_steps, t.lr_scale)
        if t.schedule == "cosine":
            return cosine_lr(step, t.lr, t.min_lr, t.warmup, t.max_steps)
        return noam_lr(step, d, t.warmup, t.lr_scale)

    def _diverged_message(self, value: float) -> str:
        last = ckpt.step_dirs(self.run_dir)
        kept = f"the last good checkpoint is {last[-1][1]}" if last else "no checkpoint was saved"
        return (
            f"loss became {value} at step {self.step + 1} (lr {self.lr(self.step + 1):.3g}); "
            f"stopped before updating the weights; {kept}. Try a lower train.lr_scale, a "
            "longer train.warmup or train.clip_norm."
        )

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
        }

    def save(self, val: dict[str, float] | None = None) -> Path:
        is_best = self._improves(val)
        if is_best:
            self.best_val = _selection_key(val)
        self._saved_step = self.step
        return ckpt.save_checkpoint(
            self.run_dir,
            self.step,
            self.model.state_dict(),
            self.state(),
            self.run.train.keep_last,
            best_info=_best_info(val) if is_best else None,
        )

    def restore(self) -> None:
        """Load the most recent complete checkpoint of the run directory."""
        found = ckpt.step_dirs(self.run_dir)
        if not found:
            raise TrainingError(f"{self.run_dir}: no checkpoint to resume from")
        _, path = found[-1]
        ckpt.load_into(self.model, path / "model.safetensors")
        state = ckpt.load_state(path / "state.pt")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.batch_index, self.best_val = int(state["batch_index"]), state.get("best_key")
            set_rng_state(state["rng"])
        except (KeyError, ValueError, TypeError) as err:
            raise ckpt.CheckpointError(f"{path / 'state.pt'}: incomplete state ({err})") from None
        self._batches = None
        self._saved_step = self.step

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
        bar = tqdm(
            total=t.max_steps,
            initial=self.step,
            disable=not t.progress,
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        with _StopFlag() as flag, MetricsLog(self.run_dir, self.step, self._tensorboard) as log:
            if not self.resume:
                log.write("data", 0, **self.data.summary())
            meter = _Meter()
            deadline = time.monotonic() + 60.0 * t.max_minutes if t.max_minutes else math.inf
            while self.step < t.max_steps:
                if flag.stop:
                    status = "interrupted"
                    break
                if time.monotonic() >= deadline:
                    status = "time limit"
                    break
                try:
                    stats = self.train_step()
                except TrainingError as err:
                    log.write("event", self.step, message=str(err))
                    bar.close()
                    raise
                meter.add(*stats)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{stats[0] / max(stats[2], 1):.3f}",
                    lr=f"{self.lr(self.step):.2e}",
                    refresh=False,
                )
                if self._periodic(meter, log, bar):
                    meter = _Meter()
            bar.close()
            self._finish(status, log)
        return TrainResult(self.step, status, self.last_val, self.run_dir)

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
            ckpt.write_json(
                self.run_dir / "checkpoints" / "best.json", {"step": self.step, **_best_info(val)}
            )
        log.write("event", self.step, message=f"training {status} at step {self.step}")

    def _validate_and_log(self, log: MetricsLog) -> dict[str, float] | None:
        val = self.validate()
        probe = self.data.bleu_probe
        if val is not None and probe is not None:
            max_positions = self.run.model.max_len
            val["val_bleu"] = probe_bleu(self.model, probe, max_positions, self.device)
        if val is not None:
            log.write("val", self.step, **val)
            self.last_val = {**val, "step": self.step}
        return val

    def _periodic(self, meter: _Meter, log: MetricsLog, bar: tqdm) -> bool:
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
        return val is not None and (self.best_val is None or _selection_key(val) >= self.best_val)


def _selection_key(val: dict[str, float]) -> float:
    """Higher is better: validation BLEU when measured (train.val_bleu > 0), else -NLL."""
    return val["val_bleu"] if "val_bleu" in val else -val["val_nll"]


def _best_info(val: dict[str, float]) -> dict[str, float]:
    """What best.json records besides the step."""
    keys = ("val_loss", "val_nll", "val_bleu")
    return {k: val[k] for k in keys if k in val}
