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
"""

from __future__ import annotations

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


def linear_lr(step: int, d_model: int, warmup: int, total: int, scale: float = 1.0) -> float:
    """Noam's warm-up to `noam_peak`, then linear decay to 0 at step `total` (1-based)."""
    if total <= warmup:
        raise ValueError(f"the linear schedule needs total steps > warmup, got {total} <= {warmup}")
    if step <= warmup:
        return noam_lr(step, d_model, warmup, scale)
    return noam_peak(d_model, warmup, scale) * max(total - step, 0) / (total - warmup)


def cosine_lr(step: int, peak: float, floor: float, warmup: int, total: int) -> float:
    """Linear warm-up to `peak` at step `warmup`, then a half cosine from `peak` down to
    `floor` at step `total`, and `floor` after it (1-based steps; GPT-3's and nanoGPT's
    schedule, `train.schedule = "cosine"`):

        lr = peak · step / warmup                                     step <= warmup
        lr = floor + (peak - floor) · (1 + cos(π (step - warmup) / (total - warmup))) / 2
    """
    if step < 1:
        raise ValueError(f"step counts from 1, got {step}")
    if warmup < 0 or total <= warmup:
        raise ValueError(f"the cosine schedule needs 0 <= warmup < total, got {warmup}, {total}")
    if step <= warmup:
        return peak * step / warmup
    progress = min((step - warmup) / (total - warmup), 1.0)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def learning_rate(train, d_model: int, step: int, total: int | None = None) -> float:
    """The rate of step `step` under `train`'s schedule (a `TrainConfig`: schedule, warmup,
    lr_scale, lr, min_lr), ending at `total` steps (default train.max_steps). Without a step
    count (max_steps = "auto" before it is fitted) linear runs Noam's warm-up and cosine its
    linear warm-up: the rates of the trial steps the trainer times and throws away."""
    total = total if total is not None else train.max_steps
    known = total != "auto"
    if train.schedule == "linear" and known:
        return linear_lr(step, d_model, train.warmup, total, train.lr_scale)
    if train.schedule == "cosine":
        end = total if known else train.warmup + 1
        return cosine_lr(step, train.lr, train.min_lr, train.warmup, end)
    return noam_lr(step, d_model, train.warmup, train.lr_scale)
