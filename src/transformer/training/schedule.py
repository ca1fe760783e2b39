"""The learning-rate schedule of Vaswani et al., 2017, Section 5.3 (equation 3), "Noam":

    lrate = scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)

It rises linearly for the first `warmup` steps and then decays with the inverse square root
of the step; the two branches meet at step = warmup, where the rate peaks at
scale · (d_model · warmup)^-0.5. Steps count from 1 (the first optimizer update uses step 1,
so its rate is scale · d_model^-0.5 · warmup^-1.5, never 0).

`linear_lr` is the alternative for a fixed budget of `total` steps: the same warm-up to the
same peak, then a straight line down to 0 at step `total` (an annealed end instead of the
inverse square root's long tail; `train.schedule = "linear"`).

`cosine_lr` is the GPT recipe (nanoGPT's `get_lr`): a linear warm-up to an absolute peak,
then a cosine down to a floor.

Both decays are functions of their progress p, 0 at the end of warm-up and 1 at the last
step, linear in the step unless a time budget re-planned the run (`training.budget`): each
re-plan leaves a knot (step, p) where the progress reached so far continues on a new slope,
so the rate stays continuous and still ends at the new last step (`decay_progress`).
"""

from __future__ import annotations

import itertools
import math


def noam_lr(step: int, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """The learning rate for the 1-based optimizer step `step` (pure function)."""
    if step < 1:
        raise ValueError(f"step counts from 1, got {step}")
    if d_model < 1 or warmup < 1:
        raise ValueError(f"d_model and warmup must be >= 1, got {d_model} and {warmup}")
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def noam_peak(d_model: int, warmup: int, scale: float = 1.0) -> float:
    """The highest rate of the schedule, reached at step = warmup."""
    return scale / math.sqrt(d_model * warmup)


Knots = tuple[tuple[int, float], ...]  # (step, progress) pairs, steps and progress increasing


def decay_progress(step: int, warmup: int, total: int, knots: Knots = ()) -> float:
    """How far the decay has gone at `step`: 0 at `warmup`, 1 at `total` and after, linear in
    between, or piecewise linear through `knots` (warmup < their steps < total)."""
    if step >= total:
        return 1.0
    points = [(warmup, 0.0), *knots, (total, 1.0)]
    for (s0, p0), (s1, p1) in itertools.pairwise(points):
        if step <= s1:
            return p0 + (p1 - p0) * (step - s0) / (s1 - s0)
    return 1.0


def linear_lr(
    step: int, d_model: int, warmup: int, total: int, scale: float = 1.0, knots: Knots = ()
) -> float:
    """Noam's warm-up to `noam_peak`, then linear decay to 0 at step `total` (1-based):
    peak · (1 - p), p = `decay_progress` (with no knots, (step - warmup) / (total - warmup))."""
    if total <= warmup:
        raise ValueError(f"the linear schedule needs total steps > warmup, got {total} <= {warmup}")
    if step <= warmup:
        return noam_lr(step, d_model, warmup, scale)
    if knots:
        return noam_peak(d_model, warmup, scale) * (
            1.0 - decay_progress(step, warmup, total, knots)
        )
    return noam_peak(d_model, warmup, scale) * max(total - step, 0) / (total - warmup)


def cosine_lr(
    step: int, peak: float, floor: float, warmup: int, total: int, knots: Knots = ()
) -> float:
    """Linear warm-up to `peak` at step `warmup`, then a half cosine from `peak` down to
    `floor` at step `total`, and `floor` after it (1-based steps; GPT-3's and nanoGPT's
    schedule, `train.schedule = "cosine"`):

        lr = peak · step / warmup                                     step <= warmup
        lr = floor + (peak - floor) · (1 + cos(π p)) / 2,  p = `decay_progress`
    """
    if step < 1:
        raise ValueError(f"step counts from 1, got {step}")
    if warmup < 0 or total <= warmup:
        raise ValueError(f"the cosine schedule needs 0 <= warmup < total, got {warmup}, {total}")
    if step <= warmup:
        return peak * step / warmup
    progress = decay_progress(step, warmup, total, knots)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def learning_rate(train, d_model: int, step: int, total: int | None = None) -> float:
    """The rate of step `step` under `train`'s schedule (a `TrainConfig`: schedule, warmup,
    lr_scale, lr, min_lr, progress_knots), ending at `total` steps (default train.max_steps;
    the knots of re-plans belong to that figure and apply only with it). Without a step
    count (max_steps = "auto" before it is fitted) linear runs Noam's warm-up and cosine its
    linear warm-up: the rates of the trial steps the trainer times and throws away."""
    total = total if total is not None else train.max_steps
    known = total != "auto"
    knots = train.progress_knots if known and total == train.max_steps else ()  # re-plans
    if train.schedule == "linear" and known:
        return linear_lr(step, d_model, train.warmup, total, train.lr_scale, knots)
    if train.schedule == "cosine":
        end = total if known else train.warmup + 1
        return cosine_lr(step, train.lr, train.min_lr, train.warmup, end, knots)
    return noam_lr(step, d_model, train.warmup, train.lr_scale)
