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
from transformer.training import budget, distributed
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig, TrainConfig
from transformer.training.data import TrainData, build_data
from transformer.training.distributed import DistributedError, World
from transformer.training.errors import RunDirError, TrainingError
from transformer.training.task import task_for
from transformer.training.trainer import Trainer, TrainResult, resolve_device

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
    fitted and wrote into config.toml (max_steps, warmup and the knots of its re-plans), so
    the resumed run is exact; an explicit max_steps (or a saved "auto": no fit was recorded)
    is kept as given."""
    if run.train.max_steps != "auto" or saved.max_steps == "auto":
        return run
    log.info("resuming the fitted schedule: max_steps %d, warmup %d", saved.max_steps, saved.warmup)
    train = dataclasses.replace(
        run.train,
        max_steps=saved.max_steps,
        warmup=saved.warmup,
        warmup_fraction=0.0,
        progress_knots=saved.progress_knots,
    )
    return dataclasses.replace(run, train=train)


def train(
    run: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    tensorboard: bool = True,
    fast: bool = True,
    world: World | None = None,
) -> TrainResult:
    """Build data and model from `run` and train into `run_dir` (see `Trainer`; `fast=False`:
    the plain reference core, without the fast engine).

    `world` (by default the one torchrun's environment describes, `World.from_env`): over
    several processes, this joins the process group (and leaves it at the end), rank 0 alone
    prepares the run directory (checks, tokenizer, data cache, config.toml) while the others
    wait, then read what it wrote; a worker group that `torchrun --max-restarts` restarted
    resumes from the last checkpoint by itself."""
    run_dir = Path(run_dir)
    try:
        world = world or World.from_env()
        device = resolve_device(run.train.device)  # before any data is prepared or file written
        distributed.batches_per_rank(run.train.accum_steps, world)
    except (TrainingError, DistributedError) as err:  # names train.device / accum_steps
        raise ConfigError(str(err)) from None
    except RuntimeError as err:  # torch cannot parse the name
        raise ConfigError(f"train.device = {run.train.device!r}: {err}") from None
    started = distributed.start(world, distributed.rank_device(device, world))
    try:
        with distributed.peers_lost(world, lambda: _resume_hint(run_dir), TrainingError):
            result = _train(run, run_dir, resume, tensorboard, fast, world)
            distributed.barrier(world)  # rank 0's last files are complete on every return
        return result
    finally:
        if started:
            distributed.stop()


def _train(
    run: RunConfig, run_dir: Path, resume: bool, tensorboard: bool, fast: bool, world: World
) -> TrainResult:
    held: dict[str, TrainData] = {}

    def prepare() -> tuple[RunConfig, bool]:  # rank 0 (every write of the set-up is here)
        again = resume or (distributed.restart_count() > 0 and bool(ckpt.step_dirs(run_dir)))
        if again and not resume:
            log.warning("torchrun restart %d: resuming from the last checkpoint",
                        distributed.restart_count())  # fmt: skip
        prepare_run_dir(run, run_dir, again)
        held["data"], model_cfg = build_data(run, run_dir, progress=run.train.progress)
        return _final_config(run, model_cfg, run_dir, again), again

    final, resume = distributed.lead(world, prepare)
    data = held["data"] if world.is_main else build_data(run, run_dir, progress=False)[0]
    torch.manual_seed(final.train.seed)  # the initial weights depend only on the config
    model = task_for(final.data).build_model(final.model)  # Transformer, GPT or BERT
    trainer = Trainer(
        final, run_dir, data, model, resume=resume, tensorboard=tensorboard, fast=fast, world=world
    )
    return trainer.fit()


def _final_config(run: RunConfig, model_cfg, run_dir: Path, resume: bool) -> RunConfig:
    """The config trained (the data's vocabulary sizes; on resume, checked against the saved
    config.toml and keeping its fitted schedule), written to RUN_DIR/config.toml."""
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
    return run


def _resume_hint(run_dir: Path) -> str:
    last = ckpt.step_dirs(run_dir)
    where = f"the last checkpoint is {last[-1][1]}" if last else "no checkpoint was saved yet"
    return f"{where}; --resume continues the run, with any number of processes"
