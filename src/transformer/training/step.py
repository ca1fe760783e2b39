"""One optimizer step of the training loop (Vaswani et al., 2017, Section 5), `Trainer`'s part
that turns batches into an update: accumulation over `accum_steps` batches, the per-token
normalisation over the whole step, the NaN/inf guard, clipping and the learning rate.

Each batch's summed loss is divided by the number of non-pad target tokens of the *whole
step*, so the gradient is the per-token mean however the tokens fall into batches (and over
torchrun's processes, `distributed`). A step whose loss or gradient is NaN/inf is skipped
before the optimizer step and counted; `train.max_nonfinite_steps` of them in a row stop the
run with `TrainingError`.
"""

from __future__ import annotations

import logging
import math
import time
from typing import NamedTuple

import torch
from torch import nn

from transformer.data import Batch
from transformer.training import checkpoint as ckpt
from transformer.training import distributed, guard
from transformer.training.distributed import share, sum_over_ranks
from transformer.training.errors import TrainingError
from transformer.training.optim import set_lr
from transformer.training.schedule import learning_rate

log = logging.getLogger("transformer.training")


class StepStats(NamedTuple):
    """What one optimizer step reports (sums over the whole step, every rank's batches)."""

    loss: float  # summed label-smoothed loss
    nll: float  # summed negative log-likelihood
    tokens: int  # target tokens the loss is divided by
    pad: int  # padded positions
    positions: int  # all positions (source and target)


class Meter:
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


class Stepping:
    """`Trainer`'s optimizer step. (A mixin: it uses the trainer's model, net, optimizer,
    task, data and data position, run, run_dir, device, autocast and world.)"""

    # ---- data position -------------------------------------------------------------------
    def _next_batch(self) -> Batch:
        if self._batches is None:
            self._batches = self.data.train.iterate((self.epoch, self.batch_index))
        batch = next(self._batches)
        self.epoch, self.batch_index = batch.next_position
        return batch

    def _forward(self, batch: Batch, net: nn.Module | None = None):
        """Summed smoothed loss and NLL of one batch (`task.Seq2SeqTask` / `task.LMTask` /
        `task.MLMTask`), by `net` (the model by default)."""
        net = self.model if net is None else net
        return self.task.loss(
            net, batch, self.run.model, self.device, self.autocast, self.run.train.label_smoothing
        )

    def train_step(self) -> StepStats:
        """Accumulate `accum_steps` batches, clip, set the rate and step Adam.

        A NaN/inf loss or gradient skips the update (the batches are consumed, the weights
        and Adam's moments untouched) and tries the next batches; `train.max_nonfinite_steps`
        such steps in a row raise `TrainingError`. Over several processes each computes its
        `share` of the step's batches and every figure is the whole step's (`distributed`).
        Returns the step's `StepStats`."""
        in_a_row = 0
        while True:
            batches = [self._next_batch() for _ in range(self.run.train.accum_steps)]
            n_tokens, n_pad, n_pos = self.task.counts(batches)  # the whole step's, every rank
            loss_value, nll_value, bad = self._step_sums(batches, n_tokens)
            if bad is None:
                break
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite_steps += 1
            in_a_row += 1
            if in_a_row >= self.run.train.max_nonfinite_steps:
                raise TrainingError(self._diverged_message(bad, in_a_row))
            log.warning("step %d: %s; update skipped (%d in a row, %d in all)",
                        self.step + 1, bad, in_a_row, self.nonfinite_steps)  # fmt: skip
        set_lr(self.optimizer, self.lr(self.step + 1))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return StepStats(loss_value, nll_value, n_tokens, n_pad, n_pos)

    def _step_sums(self, batches: list[Batch], n_tokens: int) -> tuple[float, float, str | None]:
        """This rank's share forward/backward; the step's summed loss and NLL over all ranks
        and one verdict on NaN/inf that every rank shares (the flags go in the same
        all-reduce, so no rank steps alone); the gradient is clipped when all is finite."""
        if self.world.rank > 0:  # its own dropout masks, the same again on resume
            torch.manual_seed(
                distributed.rank_seed(self.run.train.seed, self.world.rank, self.step)
            )
        loss, nll = self.accumulate(share(batches, self.world), n_tokens)
        norm = guard.grad_norm(self.model)  # (), the same on every rank: DDP reduced the grads
        loss_value, nll_value, bad = sum_over_ranks([loss, nll, ~torch.isfinite(norm)], self.world)
        verdict = guard.nonfinite_or_clip(
            self.model, loss_value, self.run.train.clip_norm, norm, finite=not bad
        )
        return loss_value, nll_value, verdict

    def accumulate(self, batches: list[Batch], n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward/backward every batch with its summed loss divided by `n_tokens` (the
        step's total over every rank's batches), so the gradients add up to that of the
        per-token mean; DDP averages the N ranks' gradients, so each loss is also multiplied
        by N (exact for a power of two), and it all-reduces once, with the last batch.
        Returns the summed loss and NLL of these batches, () tensors."""
        self.net.train()
        loss_total = torch.zeros((), device=self.device)
        nll_total = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            with distributed.no_sync(self.net, sync=i == len(batches) - 1):
                loss, nll = self._forward(batch, self.net)
                (loss * self.world.size / max(n_tokens, 1)).backward()
            loss_total += loss.detach()
            nll_total += nll.detach()
        return loss_total, nll_total

    def lr(self, step: int) -> float:
        return learning_rate(self.run.train, self.run.model.d_model, step)

    def _last_good(self) -> str:
        last = ckpt.step_dirs(self.run_dir)
        return f"the last good checkpoint is {last[-1][1]}" if last else "no checkpoint was saved"

    def _diverged_message(self, what: str, in_a_row: int = 1) -> str:
        times = f" ({in_a_row} steps in a row, train.max_nonfinite_steps)" if in_a_row > 1 else ""
        return (
            f"{what} at step {self.step + 1}{times} (lr {self.lr(self.step + 1):.3g}); "
            f"stopped before updating the weights; {self._last_good()}. Try a lower "
            "train.lr_scale, a longer train.warmup or train.clip_norm."
        )
