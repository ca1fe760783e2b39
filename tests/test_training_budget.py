"""train.max_steps = "auto": the cost model against a step-by-step simulation of the loop, the
fit against a linear scan, and whole runs on a fake clock (no real waiting): the fitted run
ends inside the budget, records its figures, trains the same weights as the figure given
explicitly, warns when a slowdown lets the time cap cut it, and resumes exactly."""

from __future__ import annotations

import json
import math
import shutil
import types

import pytest
import torch

from copy_runs import SMALL, assert_identical, weights
from transformer.config import ConfigError, apply_overrides
from transformer.training import budget
from transformer.training import checkpoint as ckpt
from transformer.training import trainer as trainer_module
from transformer.training.config import RunConfig
from transformer.training.logging import read_log
from transformer.training.run import train
from transformer.training.trainer import Trainer

STEP_S, VAL_S, SAVE_S = 2.0, 7.0, 3.0


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


def simulate(n: int, val_every: int, save_every: int) -> tuple[int, int]:
    """(validations, checkpoints) of an n-step run, event by event as `Trainer.fit` does them
    (every validation counted as a new best, which is saved)."""
    vals = saves = 0
    last_val = last_save = None
    for step in range(1, n + 1):
        validated = step % val_every == 0
        if validated:
            vals, last_val = vals + 1, step
        if step % save_every == 0 or validated:
            saves, last_save = saves + 1, step
    if n and last_val != n:
        vals += 1
    if n and last_save != n:
        saves += 1
    return vals, saves


@pytest.mark.parametrize(("val_every", "save_every"), [(4, 3), (5, 5), (2, 6), (7, 1), (10, 4)])
def test_event_counts_match_a_simulation_of_the_loop(val_every, save_every) -> None:
    for n in range(0, 60):
        want = simulate(n, val_every, save_every)
        got = (budget.n_validations(n, val_every), budget.n_saves(n, val_every, save_every))
        assert got == want, n


def test_fit_is_the_largest_count_within_the_budget() -> None:
    timing = budget.Timing(step_s=0.37, val_s=4.1, save_s=0.9)
    for seconds in (0.1, 5.0, 17.3, 100.0, 251.9):

        def total(n):
            vals, saves = simulate(n, 6, 4)
            return n * 0.37 + vals * 4.1 + saves * 0.9

        want = max(n for n in range(0, 1000) if total(n) <= seconds)
        assert budget.fit_steps(seconds, timing, 6, 4) == want


def test_fitted_config_and_its_warmup() -> None:
    base = RunConfig.from_dict(apply_overrides(SMALL, [])).train
    auto = dict(max_steps="auto", max_minutes=1.0, schedule="linear", val_every=1000)
    timing = budget.Timing(step_s=0.1, val_s=0.0, save_s=0.0, elapsed=0.6)
    seconds = 60.0 * 1.0 * (1.0 - budget.MARGIN) - 0.6
    n = max(k for k in range(1000) if k * 0.1 <= seconds)  # about 588
    fixed = budget.fitted(type(base)(**{**vars(base), **auto}), timing)
    assert (fixed.max_steps, fixed.warmup, fixed.warmup_fraction) == (n, base.warmup, 0.0)
    share = budget.fitted(type(base)(**{**vars(base), **auto, "warmup_fraction": 0.1}), timing)
    assert (share.max_steps, share.warmup) == (n, round(0.1 * n))
    with pytest.raises(budget.BudgetError, match=r"train\.max_minutes .* train\.warmup"):
        budget.fitted(type(base)(**{**vars(base), **auto, "warmup": 10_000}), timing)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_steps": "auto"}, r'train\.max_steps = "auto" .* train\.max_minutes'),
        ({"max_steps": "many", "max_minutes": 1}, r"train\.max_steps must be"),
        ({"warmup_fraction": 0.1}, r"train\.warmup_fraction applies to"),
        ({"max_steps": "auto", "max_minutes": 1, "warmup_fraction": 1.0}, "warmup_fraction"),
    ],
)
def test_config_errors_name_the_field(values, message) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({**SMALL, "train": {**SMALL["train"], **values}})


class FakeClock:
    """Seconds that pass only where the test says: STEP_S per optimizer step (SLOW_S from
    step `slow_from` on), VAL_S per validation, SAVE_S per checkpoint."""

    def __init__(self, slow_from: int | None = None, slow_s: float = 60.0) -> None:
        self.now, self.slow_from, self.slow_s = 1000.0, slow_from, slow_s

    def read(self) -> float:
        return self.now

    def install(self, monkeypatch) -> None:
        fake = types.SimpleNamespace(monotonic=self.read, perf_counter=self.read, time=self.read)
        monkeypatch.setattr(trainer_module, "time", fake)
        monkeypatch.setattr(budget, "time", fake)
        step, validate, save = Trainer.train_step, Trainer.validate, ckpt.save_checkpoint

        def timed_step(trainer):
            slow = self.slow_from is not None and trainer.step >= self.slow_from
            self.now += self.slow_s if slow else STEP_S
            return step(trainer)

        def timed_validate(trainer):
            self.now += VAL_S
            return validate(trainer)

        def timed_save(*args, **kwargs):
            self.now += SAVE_S
            return save(*args, **kwargs)

        monkeypatch.setattr(Trainer, "train_step", timed_step)
        monkeypatch.setattr(Trainer, "validate", timed_validate)
        monkeypatch.setattr(ckpt, "save_checkpoint", timed_save)
        monkeypatch.setattr(budget, "SETTLE", 2)
        monkeypatch.setattr(budget, "TIMED", 3)


AUTO = ("train.max_steps='auto'", "train.max_minutes=2.0", "train.schedule='linear'")


def auto_run(*overrides: str) -> RunConfig:
    return RunConfig.from_dict(apply_overrides(SMALL, [*AUTO, *overrides]))


def expected_steps(run: RunConfig) -> int:
    """The fit by hand: the trial (5 steps, a validation, a save), then the largest n whose
    simulated steps, validations and saves fit the rest of the budget."""
    t = run.train
    left = 60 * t.max_minutes * (1 - budget.MARGIN) - (5 * STEP_S + VAL_S + SAVE_S)
    best = 0
    for n in range(1, 500):
        vals, saves = simulate(n, t.val_every, t.save_every)
        if n * STEP_S + vals * VAL_S + saves * SAVE_S <= left:
            best = n
    return best


def test_auto_run_fills_the_budget_and_records_the_figure(tmp_path, monkeypatch) -> None:
    clock = FakeClock()
    clock.install(monkeypatch)
    start = clock.now
    run = auto_run()
    result = train(run, tmp_path / "a", tensorboard=False)
    n = expected_steps(run)
    assert n > run.train.warmup and (result.status, result.step) == ("finished", n)
    assert clock.now - start <= 120.0  # the fitted run, trial included, ends in the budget
    saved = RunConfig.from_toml(tmp_path / "a" / "config.toml")
    assert (saved.train.max_steps, saved.train.warmup) == (n, run.train.warmup)
    assert (tmp_path / "a" / "config.toml").read_text().startswith(budget.NOTE)
    [record] = read_log(tmp_path / "a", "schedule")
    assert record["max_steps"] == n and record["step_s"] == pytest.approx(STEP_S)
    assert record["val_s"] == pytest.approx(VAL_S) and record["save_s"] == pytest.approx(SAVE_S)
    assert not list((tmp_path / "a").glob(".trial-*"))  # the trial checkpoint is gone
    assert not [r for r in read_log(tmp_path / "a", "event") if r.get("level") == "warning"]
    # The trial steps leave no trace: the fitted figure given explicitly trains the same
    # weights, on the real clock.
    monkeypatch.undo()
    torch.set_num_threads(1)
    explicit = RunConfig.from_dict(
        apply_overrides(SMALL, ["train.schedule='linear'", f"train.max_steps={n}"])
    )
    train(explicit, tmp_path / "b", tensorboard=False)
    assert_identical(weights(tmp_path / "a"), weights(tmp_path / "b"))


def test_slowdown_warns_and_the_auto_run_resumes_exactly(tmp_path, monkeypatch) -> None:
    FakeClock().install(monkeypatch)
    train(auto_run(), tmp_path / "a", tensorboard=False)
    n = RunConfig.from_toml(tmp_path / "a" / "config.toml").train.max_steps
    monkeypatch.undo()
    FakeClock(slow_from=10).install(monkeypatch)  # from step 10 on, a step takes 60 s
    cut = train(auto_run(), tmp_path / "b", tensorboard=False)
    assert cut.status == "time limit" and 10 < cut.step < n
    [warning] = [r for r in read_log(tmp_path / "b", "event") if r.get("level") == "warning"]
    assert f"of max_steps {n}" in warning["message"] and "slowed down" in warning["message"]
    monkeypatch.undo()
    FakeClock().install(monkeypatch)
    resumed = train(auto_run(), tmp_path / "b", resume=True, tensorboard=False)
    assert (resumed.status, resumed.step) == ("finished", n)
    assert RunConfig.from_toml(tmp_path / "b" / "config.toml").train.max_steps == n
    assert len(read_log(tmp_path / "b", "schedule")) == 1  # fitted once, not again on resume
    assert_identical(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert json.loads((tmp_path / "b" / "checkpoints" / "best.json").read_text())["step"] > 0


def test_a_budget_too_short_for_the_warmup_is_a_config_error(tmp_path, monkeypatch) -> None:
    FakeClock().install(monkeypatch)
    with pytest.raises(ConfigError, match=r"holds only \d+ steps .* train\.warmup"):
        train(auto_run("train.max_minutes=0.5"), tmp_path, tensorboard=False)


def test_resume_keeps_the_fitted_schedule_unless_max_steps_is_given() -> None:
    from transformer.training.run import keep_fitted_schedule

    saved = RunConfig.from_dict(
        apply_overrides(SMALL, ["train.schedule='linear'", "train.max_steps=40", "train.warmup=7"])
    ).train
    resumed = keep_fitted_schedule(auto_run("train.warmup_fraction=0.2"), saved).train
    assert (resumed.max_steps, resumed.warmup, resumed.warmup_fraction) == (40, 7, 0.0)
    explicit = RunConfig.from_dict(apply_overrides(SMALL, ["train.max_steps=50"]))
    assert keep_fitted_schedule(explicit, saved) == explicit


def test_slow_steps_end_the_trial_at_its_share_of_the_budget() -> None:
    """10 s steps against a 100 s trial limit: the untimed steps stop past 25 s (3 of them),
    the timed ones once the trial has taken 100 s, and never fewer than MIN_TIMED."""
    now = [0.0]

    def step() -> None:
        now[0] += 10.0

    timing = budget.measure(step, lambda: None, lambda: None, lambda: now[0], 0.0, limit_s=100.0)
    assert timing.step_s == 10.0
    assert now[0] == 100.0  # 3 untimed steps (0-30 s), then timed ones until 100 s: 7 of them
    now[0] = 0.0
    budget.measure(step, lambda: None, lambda: None, lambda: now[0], 0.0, limit_s=1.0)
    assert now[0] == 10.0 * (1 + budget.MIN_TIMED)  # one untimed step, MIN_TIMED timed ones


# ---- re-planning when the machine's pace drifts ----------------------------------------------
def linear_train(max_steps: int, knots=()) -> object:
    values = ["train.schedule='linear'", f"train.max_steps={max_steps}", "train.warmup=4"]
    train_cfg = RunConfig.from_dict(apply_overrides(SMALL, values)).train
    return type(train_cfg)(**{**vars(train_cfg), "progress_knots": knots})


def test_knots_bend_the_decay_and_keep_the_rate_continuous() -> None:
    from transformer.training.schedule import cosine_lr, decay_progress, learning_rate, linear_lr

    assert decay_progress(4, 4, 100) == 0.0 and decay_progress(52, 4, 100) == 0.5
    assert decay_progress(30, 4, 100, ((20, 0.5),)) == pytest.approx(0.5 + 0.5 * 10 / 80)
    assert decay_progress(12, 4, 100, ((20, 0.5),)) == pytest.approx(0.25)
    for step in range(5, 101):  # no knots: the closed forms as before
        plain = linear_lr(step, 16, 4, 100)
        assert plain == pytest.approx(linear_lr(4, 16, 4, 100) * (100 - step) / 96)
    old, new = linear_train(100), linear_train(60, ((40, 36 / 96),))
    for step in range(1, 41):  # the same rates up to the knot
        assert learning_rate(new, 16, step) == pytest.approx(learning_rate(old, 16, step))
    rate = learning_rate(old, 16, 40)  # then a straight line from there to 0 at step 60
    assert learning_rate(new, 16, 50) == pytest.approx(rate / 2)
    assert learning_rate(new, 16, 60) == 0.0
    peak, floor = 1.0, 0.1
    bent = cosine_lr(50, peak, floor, 4, 60, ((40, 0.3),))
    assert bent == pytest.approx(floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * 0.65)))


def test_replanned_moves_the_end_only_where_the_pace_drifts_or_the_deadline_cuts() -> None:
    timing = budget.Timing(step_s=1.0, val_s=0.0, save_s=0.0)
    train_cfg = linear_train(100)
    assert budget.replanned(train_cfg, 40, timing, 1.02, 62.0, 0.0) is None  # within 3%, fits
    slower = budget.replanned(train_cfg, 40, timing, 2.0, 60.0, 0.0)
    assert slower.max_steps == 70 and slower.progress_knots == ((40, 36 / 96),)
    faster = budget.replanned(train_cfg, 40, timing, 0.5, 60.0, 0.0)
    assert faster.max_steps == 160
    late = budget.replanned(train_cfg, 40, timing, 1.0, 50.0, 0.0)  # the pace held; time lost
    assert late.max_steps == 90
    assert budget.replanned(train_cfg, 3, timing, 2.0, 60.0, 0.0) is None  # in the warm-up
    noam = type(train_cfg)(**{**vars(train_cfg), "schedule": "noam"})
    assert budget.replanned(noam, 40, timing, 2.0, 60.0, 0.0) is None
    again = budget.replanned(slower, 55, timing, 3.0, 30.0, 0.0)  # a second knot, further on
    assert again.max_steps == 65 and len(again.progress_knots) == 2


def test_rest_cost_counts_the_events_still_ahead() -> None:
    timing = budget.Timing(step_s=STEP_S, val_s=VAL_S, save_s=SAVE_S)
    for done in range(0, 30):
        for end in range(done, 40):
            vals_end, saves_end = simulate(end, 4, 3)
            periodic = [s for s in range(1, done + 1)]
            vals_done = sum(s % 4 == 0 for s in periodic)
            saves_done = sum(s % 3 == 0 or s % 4 == 0 for s in periodic)
            want = (
                (end - done) * STEP_S
                + (vals_end - vals_done) * VAL_S
                + (saves_end - saves_done) * SAVE_S
            )
            assert budget.rest_cost(done, end, timing, 4, 3) == pytest.approx(want), (done, end)


def test_pace_is_the_steps_time_over_the_window() -> None:
    pace = budget.Pace(window=4, step=0)
    for step in range(1, 9):
        pace.add(1.0 if step <= 4 else 3.0)
        got = pace.mark(step) if step % 2 == 0 else None
        if step == 2:
            assert got is None  # fewer than 4 steps marked
        if step == 4:
            assert got == 1.0
        if step == 8:
            assert got == 3.0  # steps 5-8 only


def test_a_slower_machine_replans_and_the_run_still_resumes_exactly(tmp_path, monkeypatch) -> None:
    FakeClock(slow_from=8, slow_s=3.0).install(monkeypatch)  # 1.5 x slower from step 8 on
    run_dir = tmp_path / "a"
    result = train(auto_run(), run_dir, tensorboard=False)
    fast_steps = expected_steps(auto_run())
    saved = RunConfig.from_toml(run_dir / "config.toml").train
    assert result.status == "finished" and result.step == saved.max_steps < fast_steps
    assert saved.progress_knots and read_log(run_dir, "replan")
    assert not [r for r in read_log(run_dir, "event") if r.get("level") == "warning"]
    # Resume from an earlier checkpoint: the re-planned schedule is in config.toml.
    copy = tmp_path / "b"
    shutil.copytree(run_dir, copy)
    steps = ckpt.step_dirs(copy)
    for _, path in steps[1:]:
        shutil.rmtree(path)
    monkeypatch.undo()
    FakeClock().install(monkeypatch)
    resumed = train(auto_run(), copy, resume=True, tensorboard=False)
    assert (resumed.status, resumed.step) == ("finished", saved.max_steps)
    assert_identical(weights(run_dir), weights(copy))
    # A re-run from the written config.toml, on the real clock, trains the same weights.
    monkeypatch.undo()
    torch.set_num_threads(1)
    train(RunConfig.from_toml(run_dir / "config.toml"), tmp_path / "c", tensorboard=False)
    assert_identical(weights(run_dir), weights(tmp_path / "c"))


@pytest.mark.parametrize(
    "knots", [[[2, 0.5]], [[10, 0.5], [8, 0.6]], [[8, 0.5], [10, 0.4]], [[8, 1.0]], [[8]], "x"]
)
def test_bad_progress_knots_are_a_config_error(knots) -> None:
    values = ["train.schedule='linear'", "train.max_steps=16", f"train.progress_knots={knots!r}"]
    with pytest.raises(ConfigError, match=r"train\.progress_knots"):
        RunConfig.from_dict(apply_overrides(SMALL, values))
