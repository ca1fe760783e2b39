"""Training figures: the learning-rate schedule of a config, and the curves of one or more runs.

- `lr_figure(run_config)`: the rate of every optimizer step (Section 5.3, equation 3, or the
  linear variant), the warm-up end and the peak marked.
- `training_figure(run_dirs)`: from each RUN_DIR/log.jsonl (`training.logging`), five rows —
  training and validation loss, perplexity, validation BLEU, learning rate, tokens/s — against
  the optimizer step (left) and against the minutes since the run's first record (right);
  several runs are overlaid, one colour per run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from transformer.training.config import RunConfig
from transformer.training.logging import read_log
from transformer.training.schedule import learning_rate

# (panel title, [(record kind, field, line style, legend suffix)])
PANELS = [
    ("loss (label-smoothed)", [("train", "loss", "-", "train"), ("val", "val_loss", "--", "val")]),
    ("perplexity", [("train", "ppl", "-", "train"), ("val", "val_ppl", "--", "val")]),
    ("validation BLEU", [("val", "val_bleu", "-o", "val")]),
    ("learning rate", [("train", "lr", "-", "")]),
    ("tokens/s", [("train", "tokens_per_s", "-", "")]),
]


def schedule(run: RunConfig, steps: int | None = None) -> list[float]:
    """The learning rate of optimizer steps 1 .. `steps` (default run.train.max_steps), as
    the trainer sets it (`training.schedule.learning_rate`)."""
    total = steps or run.train.max_steps
    if total == "auto":
        raise ValueError(
            'train.max_steps is "auto" (fitted to train.max_minutes when training starts): '
            "give --steps N, or plot a run directory's config.toml, which holds the fitted figure"
        )
    d = run.model.d_model
    return [learning_rate(run.train, d, s, total) for s in range(1, total + 1)]


def _title(run: RunConfig) -> str:
    t, d = run.train, run.model.d_model
    if t.schedule == "cosine":
        return f"linear warm-up to {t.lr:g}, then cosine to {t.min_lr:g}\nwarmup {t.warmup}"
    tail = ", then linear to 0" if t.schedule == "linear" else ""
    return (
        f"lr = {t.lr_scale:g} · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)\n"
        f"d_model {d}, warmup {t.warmup}{tail}"
    )


def lr_figure(run: RunConfig, steps: int | None = None) -> Figure:
    """The schedule of `run` over `steps` (default its max_steps), warm-up end and peak
    marked."""
    t = run.train
    rates = schedule(run, steps)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(range(1, len(rates) + 1), rates, label=f"{t.schedule} schedule")
    ax.axvline(t.warmup, color="grey", linestyle="--", label=f"end of warm-up (step {t.warmup})")
    if t.warmup <= len(rates):
        peak = rates[t.warmup - 1]
        ax.plot([t.warmup], [peak], "o", color="C3", label=f"peak {peak:.3g}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(_title(run))
    ax.legend()
    return fig


def _series(records: list[dict], kind: str, field: str) -> tuple[list, list, list]:
    """(steps, minutes, values) of one field; minutes from the first record of the log;
    records without the field (or with a non-finite value, logged as a string) are left out."""
    start = min((r["time"] for r in records if "time" in r), default=0.0)
    rows = [
        r
        for r in records
        if r.get("kind") == kind and isinstance(r.get(field), int | float) and "step" in r
    ]
    minutes = [(r.get("time", start) - start) / 60.0 for r in rows]
    return [r["step"] for r in rows], minutes, [r[field] for r in rows]


def read_runs(run_dirs: Sequence[str | os.PathLike[str]]) -> list[tuple[str, list[dict]]]:
    """(label, records) per run directory; raises FileNotFoundError naming a missing log."""
    out = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "log.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {run_dir} a training run?")
        out.append((Path(run_dir).resolve().name, read_log(run_dir)))
    names = [name for name, _ in out]
    if len(set(names)) < len(names):  # same directory names: label by the paths given
        out = [(str(run_dir), records) for run_dir, (_, records) in zip(run_dirs, out)]
    return out


def training_figure(runs: Sequence[tuple[str, list[dict]]]) -> Figure:
    """Five rows (`PANELS`) × two columns (against step, against minutes), runs overlaid."""
    fig = Figure(figsize=(12, 15), layout="constrained")
    axes = fig.subplots(len(PANELS), 2, squeeze=False)
    for row, (title, lines) in enumerate(PANELS):
        for col, xlabel in enumerate(("optimizer step", "minutes")):
            ax = axes[row, col]
            for i, (label, records) in enumerate(runs):
                for kind, field, style, suffix in lines:
                    steps, minutes, values = _series(records, kind, field)
                    if values:
                        name = f"{label} {suffix}".strip()
                        ax.plot(
                            steps if col == 0 else minutes,
                            values,
                            style,
                            color=f"C{i}",
                            label=name,
                            markersize=3,
                        )
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(xlabel)
            if title in ("perplexity", "learning rate"):
                ax.set_yscale("log")
            if ax.lines:
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("training: " + ", ".join(label for label, _ in runs))
    return fig
