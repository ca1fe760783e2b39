"""One call from a config to a trained run directory: `train(run, run_dir, resume=False)`.

A fresh run refuses a directory that already holds checkpoints (nothing is overwritten);
`resume=True` continues from the directory's newest checkpoint that verifies and requires the
same model and data config as the saved `config.toml` (training settings such as `max_steps`
may change; `max_steps = "auto"` resumes the schedule fitted by the first invocation,
`budget`). The device is checked before any work; temporaries left by a killed run are
removed on start.
"""

from __future__ import annotations

import dataclasses
import filecmp
import logging
from pathlib import Path

import torch

from transformer import durable
from transformer.config import ConfigError
from transformer.training import budget
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig, TrainConfig
from transformer.training.data import build_data
from transformer.training.task import task_for
from transformer.training.trainer import (
    RunDirError,
    Trainer,
    TrainingError,
    TrainResult,
    resolve_device,
)

log = logging.getLogger("transformer.training")


def prepare_run_dir(run: RunConfig, run_dir: Path, resume: bool) -> None:
    """Check that the directory fits the request (fresh vs resume) and create it; remove
    the temporaries of a killed run."""
    for directory in (run_dir, run_dir / "checkpoints", run_dir / "cache"):
        for path in durable.clean_stale(directory):
            log.info("removed %s (left by an interrupted write)", path)
    has_ckpt = bool(ckpt.step_dirs(run_dir))
    if resume:
        if not has_ckpt:
            raise RunDirError(f"{run_dir}: no checkpoint to resume from (start without --resume)")
        saved = RunConfig.from_toml(run_dir / "config.toml")
        if saved.data != run.data:
            raise RunDirError(
                f"{run_dir}: the [data] config differs from the saved "
                f"config.toml; resume with the same data"
            )
        return
    if has_ckpt:
        raise RunDirError(
            f"{run_dir} already holds a run (checkpoints/); use --resume to continue it "
            "or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    _drop_stale_tokenizer(run, run_dir)


def _drop_stale_tokenizer(run: RunConfig, run_dir: Path) -> None:
    """A fresh start reuses RUN_DIR/tokenizer.json only when the directory's config.toml has
    the same [data] settings (a start stopped after tokenizing) and, where `data.tokenizer`
    names a file, the copy still equals it; otherwise the file was made for other settings
    (say, another `bpe_merges`, or a tokenizer file edited since) and is removed, to be learnt
    or copied again."""
    tok_path = run_dir / "tokenizer.json"
    if not tok_path.exists():
        return
    reason = "was made for other [data] settings"
    try:
        same = RunConfig.from_toml(run_dir / "config.toml").data == run.data
        if same and run.data.tokenizer:
            reason = f"differs from data.tokenizer ({run.data.tokenizer}), edited since"
            same = filecmp.cmp(run.data.tokenizer, tok_path, shallow=False)
    except (OSError, ValueError):  # no config.toml, one this version cannot read, no file
        same = False
    if not same:
        log.warning("%s %s; it is replaced", tok_path, reason)
        tok_path.unlink()


def keep_fitted_schedule(run: RunConfig, saved: TrainConfig) -> RunConfig:
    """Resuming with max_steps "auto" trains the schedule that the run's first invocation
    fitted and wrote into config.toml (max_steps and warmup), so the resumed run is exact;
    an explicit max_steps (or a saved "auto": no fit was recorded) is kept as given."""
    if run.train.max_steps != "auto" or saved.max_steps == "auto":
        return run
    log.info("resuming the fitted schedule: max_steps %d, warmup %d", saved.max_steps, saved.warmup)
    train = dataclasses.replace(
        run.train, max_steps=saved.max_steps, warmup=saved.warmup, warmup_fraction=0.0
    )
    return dataclasses.replace(run, train=train)


def train(
    run: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    tensorboard: bool = True,
    fast: bool = True,
) -> TrainResult:
    """Build data and model from `run` and train into `run_dir` (see `Trainer`; `fast=False`:
    the plain reference core, without the fast engine)."""
    run_dir = Path(run_dir)
    try:
        resolve_device(run.train.device)  # before any data is prepared or file written
    except TrainingError as err:  # names train.device
        raise ConfigError(str(err)) from None
    except RuntimeError as err:  # torch cannot parse the name
        raise ConfigError(f"train.device = {run.train.device!r}: {err}") from None
    prepare_run_dir(run, run_dir, resume)
    data, model_cfg = build_data(run, run_dir, progress=run.train.progress)
    run, note = RunConfig(model=model_cfg, data=run.data, train=run.train), ""
    if resume:
        saved = RunConfig.from_toml(run_dir / "config.toml")
        if saved.model != run.model:
            raise RunDirError(
                f"{run_dir}: the [model] config differs from the saved "
                "config.toml; a checkpoint only loads into the same model"
            )
        if run.train.max_steps == "auto" != saved.train.max_steps:
            note = budget.NOTE  # config.toml keeps saying where the figures came from
        run = keep_fitted_schedule(run, saved.train)
    durable.write_text(run_dir / "config.toml", note + run.to_toml())
    torch.manual_seed(run.train.seed)  # the initial weights depend only on the config
    model = task_for(run.data).build_model(run.model)  # Transformer, GPT or BERT
    trainer = Trainer(run, run_dir, data, model, resume=resume, tensorboard=tensorboard, fast=fast)
    return trainer.fit()
