"""`train.max_steps = "auto"`: the step count that fills a time budget on the machine at hand.

With a linear schedule the learning rate reaches 0 at max_steps, so a max_steps fitted to one
machine's hour is cut short on a slower one (the rate still high when `max_minutes` stops it)
and leaves time unused on a faster one. Instead the trainer measures, before its first real
step, what the run will spend its time on, and picks the largest max_steps that fits:

    cost(N) = N · step_s + V(N) · val_s + C(N) · save_s

- `step_s`: the mean time of one optimizer step over `TIMED` trial steps, taken after `SETTLE`
  untimed ones (the allocator, oneDNN's kernel caches and the first epoch's batches settle);
  where steps are slow, the trial steps stop after `TRIAL_SHARE` of the budget (at least
  `MIN_TIMED` timed steps), so a short budget on a slow machine is not spent on the trial;
- V(N) = ceil(N / val_every): the validations at every val_every-th step and the final one
  (none is repeated when N is a multiple); `val_s` is one validation timed on the trial model
  (the loss pass and, with train.val_bleu, the greedy BLEU probe with outputs capped at the
  source length, about what a trained model writes);
- C(N): the checkpoints at every save_every-th step, at every validation (counted as if each
  improved the best, an upper bound) and at the end; `save_s` is one checkpoint written to a
  scratch directory.

A machine's speed drifts (a shared host, other guests): fitted once, a schedule is cut short
when the machine slows down and leaves time unused when it speeds up. So at every log record
the run measures its steps' pace over the last `val_every` steps (the steps alone: validations
and checkpoints keep their trial times) and re-plans (`replanned`) where that pace differs from
the plan's by more than `REPLAN_TOLERANCE` or the rest of the schedule would overrun the
deadline: max_steps moves to the last step that fits and the decay continues from the rate
reached on a new slope, a knot (step, progress) in train.progress_knots
(`schedule.decay_progress`), written with the new max_steps to config.toml and log.jsonl
("replan" records). The schedule stays a function of the step alone, so a resumed run and a
re-run from the run directory train the same rates.

The budget clock is the trainer's (`time.monotonic`), started at the beginning of the training
loop: it counts the trial steps and timings, every step, log record, validation, BLEU probe
and checkpoint, and the final validation and checkpoint; it does not count building the data
(tokenizer, encoding, batching) or the model, nor anything after training. `MARGIN` of the
budget is held back for noise in the measured step time. The trial steps are discarded (the
trainer puts back weights, optimizer, RNG and data position), so a run with the fitted
max_steps given explicitly trains exactly the same weights. Under torchrun every rank runs
the trial steps (they hold the all-reduces), rank 0 alone times a validation and a checkpoint
and fits; its schedule (or its BudgetError) is broadcast, so all ranks stop at the same step.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformer import durable
from transformer.config import ConfigError
from transformer.training import checkpoint as ckpt
from transformer.training.config import TrainConfig
from transformer.training.distributed import lead, main_clock
from transformer.training.logging import MetricsLog
from transformer.training.rng import rng_state, set_rng_state
from transformer.training.schedule import decay_progress
from transformer.training.val_bleu import probe_bleu

log = logging.getLogger("transformer.training")

SETTLE = 10  # untimed trial steps
TIMED = 40  # timed trial steps
MIN_TIMED = 5  # timed trial steps even where steps are slow
TRIAL_SHARE = 0.05  # the trial steps stop after this share of the budget (slow steps)
MARGIN = 0.01  # fraction of the budget held back for step-time noise
REPLAN_TOLERANCE = 0.03  # re-plan when the rest of the schedule misses the budget by more
NOTE = (
    "# train.max_steps (and train.warmup) were fitted to train.max_minutes on the machine\n"
    '# that trained this run (max_steps = "auto"; the "schedule" record of log.jsonl).\n\n'
)


class BudgetError(ConfigError):
    """The budget cannot hold the schedule (one line naming the fields)."""


@dataclass(frozen=True)
class Timing:
    """Seconds: one optimizer step, one validation, one checkpoint; `elapsed`: the budget
    clock's reading after the trial (time already spent)."""

    step_s: float
    val_s: float
    save_s: float
    elapsed: float = 0.0


def measure(
    step: Callable[[], object],
    validate: Callable[[], object],
    save: Callable[[], object],
    clock: Callable[[], float],
    started: float,
    settle: int = SETTLE,
    timed: int = TIMED,
    limit_s: float = math.inf,
) -> Timing:
    """Run `settle` + `timed` trial steps, one validation and one save, reading `clock`.
    Where steps are slow, the trial steps stop once they have taken `limit_s` (a quarter of it
    for the untimed ones), keeping at least `MIN_TIMED` timed steps."""
    begin = clock()  # the limits count from here, on `clock` (rank 0's over several ranks)
    for i in range(settle):
        if i and clock() - begin >= limit_s / 4:
            break
        step()
    t0, n = clock(), 0
    while n < timed and (n < MIN_TIMED or clock() - begin < limit_s):
        step()
        n += 1
    t1 = clock()
    validate()
    t2 = clock()
    save()
    t3 = clock()
    return Timing((t1 - t0) / max(n, 1), t2 - t1, t3 - t2, t3 - started)


def n_validations(n: int, val_every: int) -> int:
    """Validations of an n-step run: every val_every-th step, and at the end unless it just ran."""
    return -(-n // val_every)


def n_saves(n: int, val_every: int, save_every: int) -> int:
    """Checkpoints of an n-step run: every save_every-th step, every validation (as if each
    improved the best) and the end, each step counted once."""
    both = math.lcm(val_every, save_every)
    periodic = n // save_every + n // val_every - n // both
    return periodic + (n > 0 and n % save_every != 0 and n % val_every != 0)


def cost(n: int, timing: Timing, val_every: int, save_every: int) -> float:
    """Predicted seconds of an n-step run (steps, validations, checkpoints)."""
    return (
        n * timing.step_s
        + n_validations(n, val_every) * timing.val_s
        + n_saves(n, val_every, save_every) * timing.save_s
    )


def fit_steps(seconds: float, timing: Timing, val_every: int, save_every: int) -> int:
    """The largest n >= 0 with cost(n) <= seconds (cost grows with n: binary search)."""
    if not timing.step_s > 0:
        raise BudgetError(f"a trial step took {timing.step_s} s: the clock does not advance")
    lo, hi = 0, max(int(seconds / timing.step_s), 0) + 1  # cost(hi) > seconds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cost(mid, timing, val_every, save_every) <= seconds:
            lo = mid
        else:
            hi = mid
    return lo


def fitted(train: TrainConfig, timing: Timing, done: int = 0) -> TrainConfig:
    """`train` with max_steps (and, with warmup_fraction, warmup) fitted to max_minutes;
    `done` steps were trained before (a resumed run), the budget holds the rest."""
    seconds = 60.0 * train.max_minutes * (1.0 - MARGIN) - timing.elapsed
    n = done + fit_steps(seconds, timing, train.val_every, train.save_every)
    warmup = train.warmup
    if train.warmup_fraction > 0:
        warmup = min(max(round(train.warmup_fraction * n), 1), max(n - 1, 1))
    if n < 1 or (train.schedule in ("linear", "cosine") and n <= warmup):
        raise BudgetError(
            f"train.max_minutes = {train.max_minutes} holds only {n} steps of "
            f"{timing.step_s:.3g} s on this machine, not more than train.warmup = {warmup}: "
            "raise train.max_minutes or set train.warmup_fraction"
        )
    return dataclasses.replace(train, max_steps=n, warmup=warmup, warmup_fraction=0.0)


def rest_cost(done: int, end: int, timing: Timing, val_every: int, save_every: int) -> float:
    """Predicted seconds from step `done` to the end of an `end`-step run: its steps, the
    periodic validations and checkpoints after `done`, and the final ones."""
    both = math.lcm(val_every, save_every)
    periodic_saves = done // save_every + done // val_every - done // both
    return (
        cost(end, timing, val_every, save_every)
        - done * timing.step_s
        - done // val_every * timing.val_s
        - periodic_saves * timing.save_s
    )


def replanned(
    train: TrainConfig, step: int, timing: Timing, step_s: float, seconds_left: float, spare: float
) -> TrainConfig | None:
    """`train` re-planned at `step`, or None where its plan still holds: `timing` is the plan's
    (step_s the pace it assumed), `step_s` the pace measured since, `seconds_left` the time to
    the deadline. The run re-plans where the pace has drifted by more than `REPLAN_TOLERANCE`
    or the rest of the schedule would overrun the deadline; max_steps becomes the last step
    whose rest fits `seconds_left - spare`, and the knot (step, progress reached) keeps the
    rate continuous. Noam's schedule and the warm-up are never re-planned."""
    left = train.max_steps - step
    if train.schedule not in ("linear", "cosine") or step <= train.warmup or left < 1:
        return None
    pace, every = dataclasses.replace(timing, step_s=step_s), (train.val_every, train.save_every)
    drifted = abs(step_s / timing.step_s - 1.0) > REPLAN_TOLERANCE
    if not drifted and rest_cost(step, train.max_steps, pace, *every) <= seconds_left:
        return None
    lo, hi = 1, max(left, int(seconds_left / step_s)) + 2  # rest_cost grows with the end
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (
            (mid, hi)
            if rest_cost(step, step + mid, pace, *every) <= seconds_left - spare
            else (lo, mid)
        )
    if step + lo == train.max_steps:
        return None
    progress = decay_progress(step, train.warmup, train.max_steps, train.progress_knots)
    knots = (*train.progress_knots, (step, progress))
    return dataclasses.replace(train, max_steps=step + lo, progress_knots=knots)


class Pace:
    """Seconds an optimizer step takes (the steps alone: the trial timed the validations and
    checkpoints) over the last `window` steps, from marks at the log records; None until
    `window` steps are marked."""

    def __init__(self, window: int, step: int) -> None:
        self.window, self.seconds = window, 0.0
        self.marks: deque[tuple[int, float]] = deque([(step, 0.0)])

    def add(self, seconds: float) -> None:
        self.seconds += seconds

    def mark(self, step: int) -> float | None:
        self.marks.append((step, self.seconds))
        while len(self.marks) > 2 and self.marks[1][0] <= step - self.window:
            self.marks.popleft()
        first, then = self.marks[0]
        return (self.seconds - then) / (step - first) if step - first >= self.window else None


def _nothing() -> None:
    pass


class ScheduleFitting:
    """`Trainer`'s part of max_steps "auto": fit the schedule, warn when the time cap cuts it.
    (A mixin: it uses the trainer's model, optimizer, data position, run, run_dir and world.)"""

    def _fit_schedule(self, metrics: MetricsLog, started: float) -> None:
        """Time discarded trial steps, a validation and a checkpoint, then fit max_steps (and
        warm-up) to train.max_minutes; the figures go to config.toml and log.jsonl."""
        snapshot, main = self._snapshot(), self.world.is_main
        try:  # over several processes, all of them run the trial steps; rank 0 the rest
            timing = measure(
                self.train_step,
                self._trial_validation if main else _nothing,
                self._scratch_save if main else _nothing,
                main_clock(self.world, self.device, time.monotonic),  # rank 0's, on every rank
                started,
                settle=SETTLE,
                timed=TIMED,
                limit_s=TRIAL_SHARE * 60.0 * self.run.train.max_minutes,
            )
        finally:
            self._rewind(snapshot)
        # Rank 0's timing decides; the others train the schedule it fitted (or raise its error).
        train = lead(self.world, lambda: fitted(self.run.train, timing, done=self.step))
        self.run, self._timing = dataclasses.replace(self.run, train=train), timing
        if not main:
            return
        durable.write_text(self.run_dir / "config.toml", NOTE + self.run.to_toml())
        planned = cost(train.max_steps - self.step, timing, train.val_every, train.save_every)
        figures = dict(max_steps=train.max_steps, warmup=train.warmup, step_s=timing.step_s)
        figures.update(val_s=timing.val_s, save_s=timing.save_s, trial_s=timing.elapsed)
        metrics.write("schedule", self.step, **figures, planned_s=planned + timing.elapsed)
        log.info(
            "max_steps = %d, warmup = %d: %.3g s a step, %.3g s a validation, %.3g s a "
            "checkpoint fill train.max_minutes = %g (written to config.toml)",
            *(train.max_steps, train.warmup, timing.step_s, timing.val_s, timing.save_s),
            train.max_minutes,
        )

    def _replan(self, metrics: MetricsLog, pace: Pace, deadline: float) -> bool:
        """At a log record of a fitted run: re-plan the rest of the schedule where the pace
        has drifted or the deadline would cut it (`replanned`; rank 0's clock and pace decide
        for every rank). Returns whether it did."""
        if self._timing is None:
            return False
        spare = MARGIN * 60.0 * self.run.train.max_minutes

        def decide() -> tuple[TrainConfig | None, float]:
            step_s, left = pace.mark(self.step), deadline - time.monotonic()
            if step_s is None:
                return None, 0.0
            return replanned(self.run.train, self.step, self._timing, step_s, left, spare), step_s

        train, step_s = lead(self.world, decide)
        if train is None:
            return False
        was, self.run = self.run.train.max_steps, dataclasses.replace(self.run, train=train)
        planned, self._timing = (
            self._timing.step_s,
            dataclasses.replace(self._timing, step_s=step_s),
        )
        if self.world.is_main:
            durable.write_text(self.run_dir / "config.toml", NOTE + self.run.to_toml())
            metrics.write("replan", self.step, max_steps=train.max_steps, was=was,
                          step_s=step_s, planned_step_s=planned)  # fmt: skip
            log.info("step %d: %.3g s a step against %.3g planned: max_steps %d -> %d",
                     self.step, step_s, planned, was, train.max_steps)  # fmt: skip
        return True

    def _snapshot(self) -> tuple[Any, ...]:
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        optimizer = copy.deepcopy(self.optimizer.state_dict())
        return weights, optimizer, rng_state(), (self.step, self.epoch, self.batch_index)

    def _rewind(self, snapshot: tuple[Any, ...]) -> None:
        """Put back what `_snapshot` saw: the trial steps leave no trace."""
        weights, optimizer, rng, (self.step, self.epoch, self.batch_index) = snapshot
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        set_rng_state(rng)
        self._batches = None

    def _trial_validation(self) -> None:
        """A validation as the run does it; the BLEU probe's outputs are capped at the source
        length (an untrained model would otherwise write to the +50 limit)."""
        if self.validate() is not None and self.data.bleu_probe is not None:
            probe = self.data.bleu_probe
            probe_bleu(self.model, probe, self.run.model.max_len, self.device, max_len_offset=0)

    def _scratch_save(self) -> None:
        with tempfile.TemporaryDirectory(prefix=".trial-", dir=self.run_dir) as scratch:
            ckpt.save_checkpoint(scratch, self.step, self.model.state_dict(), self.state(), 1)

    def _warn_cut(self, metrics: MetricsLog, first_step: int, since: float) -> None:
        """A warning (logged and in log.jsonl) when the time cap ends a schedule that has an
        end (linear, or fitted) before that end."""
        t = self.run.train
        if t.schedule not in ("linear", "cosine") and self._timing is None:
            return  # Noam's schedule has no end: the time cap is the intended stop
        message = (
            f"train.max_minutes = {t.max_minutes:g} ended the run at step {self.step} of "
            f"max_steps {t.max_steps}, the learning rate still {self.lr(max(self.step, 1)):.3g}"
        )
        done = self.step - first_step
        if self._timing is not None and done > 0:
            took = (time.monotonic() - since) / done
            expected = cost(done, self._timing, t.val_every, t.save_every) / done
            message += (
                f": {took:.3g} s a step (validations and checkpoints included) against the "
                f"{expected:.3g} s measured at the start; the machine slowed down"
            )
        log.warning(message)
        metrics.write("event", self.step, level="warning", message=message)
