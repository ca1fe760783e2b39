"""Training configuration: `[model]`, `[data]`, `[train]` TOML sections as frozen dataclasses.

    run = RunConfig.from_toml("configs/copy-task.toml", ["train.max_steps=200"])
    run.model  # transformer.config.ModelConfig
    run.data   # DataConfig
    run.train  # TrainConfig

`[model]` may name a `preset = "tiny"` whose fields the other keys override. `to_toml()`
writes the resolved config (every field explicit) that a run directory keeps.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self

from transformer.config import (
    LEGACY_LABEL_SMOOTHING,
    ConfigError,
    ModelConfig,
    apply_overrides,
    load_toml,
)

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe (Vaswani et al., 2017, Section 5.3) and the loop's bookkeeping.

    lr = lr_scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5); Adam(betas, eps).
    `schedule = "linear"` keeps that warm-up and peak, then decays linearly to 0 at max_steps.
    `schedule = "cosine"` (GPT / nanoGPT): linear warm-up to `lr` over `warmup` steps, then a
    cosine down to the floor `min_lr` at max_steps (lr_scale and d_model play no part).
    `optimizer = "adamw"`: AdamW (Loshchilov & Hutter, 2019) with decoupled `weight_decay` on
    the linear layers' weight matrices only (none on biases, LayerNorms and embeddings);
    "adam" is the paper's Adam, which takes no weight decay.
    `label_smoothing` is the loss's ε_ls (Section 5.4, Table 3): 0.1 in the paper, 0 for a
    language model scored on its plain NLL.
    One optimizer step accumulates `accum_steps` batches, normalised by their total number of
    target tokens. `clip_norm` = 0 disables gradient clipping. Intervals are in optimizer steps.
    Checkpoints are written every `save_every` steps, whenever a validation improves the best
    validation figure, at the end and on Ctrl-C; the last `keep_last` and the best are kept.
    `val_bleu` = N > 0 (or "all": the whole validation split) also greedy-decodes N validation
    sentences at every validation and scores their sacreBLEU (`val_bleu.py`); the best
    checkpoint is then the highest BLEU, else the lowest validation NLL.
    `device` "auto" picks CUDA when present. `amp`: "bf16" autocast always, "off" never, "auto"
    on CUDA only, "native" where the device computes bf16 in hardware (CUDA, or a CPU with
    AVX512-BF16 or AMX) and float32 elsewhere.
    `max_minutes` > 0 also stops (validating and saving, as at max_steps) once this much wall
    time has gone into the training loop of this invocation (data preparation not counted).
    `max_steps = "auto"` (needs `max_minutes`) fits the step count to the budget on the machine
    at hand (`training.budget`): before the first real step the trainer runs `budget.SETTLE +
    budget.TIMED` trial steps (discarded: weights, optimizer, RNG and data position are put
    back), times one validation and one checkpoint, and picks the largest max_steps whose
    steps, periodic validations and checkpoints and the final validation and checkpoint end
    within the `max_minutes` that its clock started counting at the start of the loop (trial
    steps included; data preparation, model building and anything after training excluded).
    The figure (and the warm-up) is written into RUN_DIR/config.toml and log.jsonl ("schedule"
    record), so `--resume` and a re-run from the run directory train the same schedule; if
    the machine's speed drifts by more than 3% (its steps' pace over the last val_every
    steps) or the deadline would cut the schedule, the run re-plans: max_steps moves to fit
    and the decay continues from the rate reached, on a new slope (a knot (step, progress)
    in `progress_knots`, also written to config.toml and log.jsonl); if the time cap still
    ends the run first, a warning says so.
    Warm-up: `warmup` steps as given (the default, `warmup_fraction = 0`: warm-up guards
    Adam's first updates, which take as many steps on any machine), or with `max_steps =
    "auto"` and `warmup_fraction` in (0, 1), that fraction of the fitted max_steps.
    `threads` > 0 sets torch's CPU thread count (0 keeps torch's default); small models on a
    busy machine often run faster with 1.
    A step whose loss or gradient is NaN/inf is skipped (no update); `max_nonfinite_steps`
    such steps in a row stop the run (1 stops at the first).
    `compile = true` runs the training forward/backward through `torch.compile` (validation
    and decoding stay eager: their shapes change at every call); the first steps compile.
    """

    seed: int = 0
    max_steps: int | str = 1000  # or "auto" (with max_minutes): fitted to the time budget
    max_minutes: float = 0.0
    warmup: int = 4000
    warmup_fraction: float = 0.0  # > 0 with max_steps "auto": warm-up = this x max_steps
    progress_knots: tuple[tuple[int, float], ...] = ()  # re-plans of an "auto" run (budget)
    label_smoothing: float = 0.1
    lr_scale: float = 1.0
    schedule: str = "noam"
    lr: float = 1e-3
    min_lr: float = 1e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    accum_steps: int = 1
    clip_norm: float = 0.0
    log_every: int = 50
    val_every: int = 500
    save_every: int = 500
    keep_last: int = 5
    val_bleu: int | str = 0  # or "all": every validation sentence
    device: str = "auto"
    amp: str = "auto"
    threads: int = 0
    max_nonfinite_steps: int = 5
    progress: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        self._check_max_steps()
        _check_knots(self)
        for name in ("warmup", "accum_steps", "log_every", "val_every"):
            _positive_int("train", name, getattr(self, name))
        for name in ("save_every", "keep_last", "max_nonfinite_steps"):
            _positive_int("train", name, getattr(self, name))
        for name in ("val_bleu", "threads"):  # 0 = off / torch's default
            value = getattr(self, name)
            if name == "val_bleu" and value == "all":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                also = ' or "all"' if name == "val_bleu" else ""
                raise ConfigError(f"train.{name} must be an integer >= 0{also}, got {value!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"train.compile must be true or false, got {self.compile!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"train.seed must be an integer, got {self.seed!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"train.betas must be two numbers in [0, 1), got {self.betas!r}")
        for name in ("lr_scale", "eps"):
            _positive_float("train", name, getattr(self, name))
        ls = self.label_smoothing
        if not isinstance(ls, int | float) or isinstance(ls, bool) or not 0.0 <= ls < 1.0:
            raise ConfigError(f"train.label_smoothing must be in [0, 1), got {ls!r}")
        if not _finite(self.max_minutes) or not self.max_minutes >= 0:
            raise ConfigError(
                f"train.max_minutes must be a finite number >= 0 (0 = no limit), "
                f"got {self.max_minutes!r}"
            )
        if not _finite(self.clip_norm) or self.clip_norm < 0:
            raise ConfigError(
                f"train.clip_norm must be a finite number >= 0 (0 = off), got {self.clip_norm!r}"
            )
        _choice("train", "amp", self.amp, ("auto", "native", "bf16", "off"))
        _choice("train", "schedule", self.schedule, ("noam", "linear", "cosine"))
        if (
            self.schedule in ("linear", "cosine")
            and self.max_steps != "auto"
            and self.max_steps <= self.warmup
        ):
            raise ConfigError(
                f"train.schedule {self.schedule!r} ends its decay at train.max_steps "
                f"({self.max_steps}), which must exceed train.warmup ({self.warmup})"
            )
        _check_optimizer(self)
        if not isinstance(self.device, str) or not DEVICE.match(self.device):
            raise ConfigError(
                f"train.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )

    def _check_max_steps(self) -> None:
        """max_steps: a positive integer, or "auto" with a time budget; warmup_fraction."""
        f = self.warmup_fraction
        if not isinstance(f, int | float) or isinstance(f, bool) or not 0.0 <= f < 1.0:
            raise ConfigError(f"train.warmup_fraction must be in [0, 1) (0 = off), got {f!r}")
        if self.max_steps != "auto":
            _positive_int("train", "max_steps", self.max_steps)
            if f > 0:
                raise ConfigError(
                    'train.warmup_fraction applies to train.max_steps = "auto" only; with a '
                    "fixed max_steps set train.warmup"
                )
        elif not (isinstance(self.max_minutes, int | float) and self.max_minutes > 0):
            raise ConfigError(
                'train.max_steps = "auto" fits the steps to train.max_minutes, which must be '
                f"> 0, got {self.max_minutes!r}"
            )


def _check_knots(t: TrainConfig) -> None:
    """progress_knots: [step, progress] pairs written by the budget's re-plans
    (`schedule.decay_progress`): warmup < steps < max_steps, both increasing, progress in
    (0, 1). Stored as a tuple of tuples."""
    try:
        knots = tuple((k[0], k[1]) for k in t.progress_knots if len(k) == 2)
    except (TypeError, KeyError, IndexError):
        knots = None
    if knots is None or len(knots) != len(t.progress_knots):
        raise ConfigError(
            f"train.progress_knots must be a list of [step, progress] pairs, "
            f"got {t.progress_knots!r}"
        )
    object.__setattr__(t, "progress_knots", knots)
    if not knots:
        return
    steps, progress = [k[0] for k in knots], [k[1] for k in knots]
    end = t.max_steps if t.max_steps != "auto" else math.inf
    ok = all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
    ok = ok and all(_finite(p) and 0 < p < 1 for p in progress)
    ok = ok and t.warmup < steps[0] and steps[-1] < end and t.schedule in ("linear", "cosine")
    ok = ok and all(a < b for a, b in itertools.pairwise(steps))
    if not ok or not all(a < b for a, b in itertools.pairwise(progress)):
        raise ConfigError(
            "train.progress_knots must hold increasing [step, progress] pairs with train.warmup "
            f"< step < train.max_steps and 0 < progress < 1, for a linear or cosine schedule; "
            f"got {list(map(list, knots))}"
        )


def _check_optimizer(t: TrainConfig) -> None:
    """The optimizer / cosine-schedule fields of `TrainConfig`."""
    _choice("train", "optimizer", t.optimizer, ("adam", "adamw"))
    for name in ("lr", "min_lr", "weight_decay"):
        value = getattr(t, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
            raise ConfigError(f"train.{name} must be a number >= 0, got {value!r}")
    if t.schedule == "cosine" and not (t.lr > 0 and t.min_lr <= t.lr):
        raise ConfigError(
            f"train.lr must be > 0 and train.min_lr in [0, lr], got {t.lr!r} and {t.min_lr!r}"
        )
    if t.optimizer == "adam" and t.weight_decay:
        raise ConfigError(
            "train.weight_decay is decoupled weight decay for train.optimizer = 'adamw'; "
            "'adam' (the paper's) takes none"
        )


@dataclass(frozen=True)
class DataConfig:
    """What to train on. task "copy": synthetic sequences whose target equals the source
    (symbols drawn from ids 4 .. model.src_vocab_size-1). task "multi30k": the Multi30k
    corpus (`data_dir` or TRANSFORMER_DATA), tokenized with a joint BPE of `bpe_merges`
    merges trained on the training split unless `tokenizer` names a saved one; with
    `split_punct`, punctuation is split off words first (`transformer.tokenizers.punct`).
    task "parallel": any sentence-aligned corpus, the files `train_prefix.<src_lang>` and
    `.<tgt_lang>` (plain or .gz; a relative prefix under `data_dir` when set) and likewise
    `val_prefix`, tokenized as Multi30k is (WMT14 for the paper's configs).
    Batches hold at most `max_tokens` source (and target) tokens including padding.

    task "lm" (a GPT language model): one long UTF-8 text, `text_file` or else Tiny
    Shakespeare (`data_dir`, downloaded where missing), split as nanoGPT does (the first 90%
    of the characters train, the last 10% validate), each part encoded once (cached under
    RUN_DIR/cache, memory-mapped). Batches are `batch_size` contiguous blocks of `block_size`
    tokens (`transformer.data.LMStream`). `tokenizer_kind` "char" (a character vocabulary of
    the whole text, as nanoGPT's) or "bytebpe" (GPT-2's byte-level BPE, `bpe_merges` merges
    learnt on the training part), unless `tokenizer` names a saved one.
    """

    task: str = "copy"
    max_tokens: int = 4096
    copy_min_len: int = 4
    copy_max_len: int = 10
    copy_train_size: int = 20000
    copy_val_size: int = 200
    src_lang: str = "de"
    tgt_lang: str = "en"
    data_dir: str = ""
    tokenizer: str = ""
    bpe_merges: int = 8000
    split_punct: bool = False
    max_words: int = 100
    train_prefix: str = ""
    val_prefix: str = ""
    text_file: str = ""
    tokenizer_kind: str = "char"
    block_size: int = 256
    batch_size: int = 64
    vocab_size: int = 8000
    wordpiece_criterion: str = "frequency"
    lowercase: bool = True
    val_file: str = ""
    n_segments: int = 2

    def __post_init__(self) -> None:
        _choice("data", "task", self.task, ("copy", "multi30k", "parallel", "lm", "mlm"))
        self._check_mlm()
        if self.task == "parallel" and not (self.train_prefix and self.val_prefix):
            raise ConfigError(
                "data.task 'parallel' reads data.train_prefix and data.val_prefix "
                "(files PREFIX.<src_lang> and PREFIX.<tgt_lang>); set both"
            )
        _choice("data", "tokenizer_kind", self.tokenizer_kind, ("char", "bytebpe"))
        _positive_int("data", "block_size", self.block_size)
        _positive_int("data", "batch_size", self.batch_size)
        for name in ("max_tokens", "copy_min_len", "copy_max_len", "copy_train_size"):
            _positive_int("data", name, getattr(self, name))
        for name in ("copy_val_size", "bpe_merges", "max_words"):
            _positive_int("data", name, getattr(self, name))
        if not isinstance(self.split_punct, bool):
            raise ConfigError(f"data.split_punct must be true or false, got {self.split_punct!r}")
        if self.copy_min_len > self.copy_max_len:
            raise ConfigError(
                f"data.copy_min_len ({self.copy_min_len}) > data.copy_max_len ({self.copy_max_len})"
            )

    def _check_mlm(self) -> None:
        """The fields of task "mlm"."""
        _positive_int("data", "vocab_size", self.vocab_size)
        _choice(
            "data", "wordpiece_criterion", self.wordpiece_criterion, ("frequency", "likelihood")
        )
        if not isinstance(self.lowercase, bool):
            raise ConfigError(f"data.lowercase must be true or false, got {self.lowercase!r}")
        n = self.n_segments
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"data.n_segments must be an integer >= 0, got {n!r}")
        if self.val_file and not self.text_file:
            raise ConfigError("data.val_file goes with data.text_file (task 'mlm')")


@dataclass(frozen=True)
class RunConfig:
    """The whole run: model architecture, data, and training recipe."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Build from {"model": {...}, "data": {...}, "train": {...}}; unknown keys are errors."""
        unknown = sorted(set(values) - {"model", "data", "train"})
        if unknown:
            raise ConfigError(f"unknown section [{unknown[0]}] (known: model, data, train)")
        model = dict(values.get("model", {}))
        train = dict(values.get("train", {}))
        if LEGACY_LABEL_SMOOTHING in model:  # an older config.toml: ε_ls under [model]
            train.setdefault("label_smoothing", model.pop(LEGACY_LABEL_SMOOTHING))
        preset = model.pop("preset", None)
        if preset is not None:
            model_cfg = ModelConfig.preset(preset, **model)
        else:
            model_cfg = ModelConfig.from_dict(model)
        return cls(
            model=model_cfg,
            data=_build(DataConfig, values.get("data", {}), "data"),
            train=_build(TrainConfig, train, "train"),
        )

    @classmethod
    def from_toml(cls, path: str | Path, overrides: list[str] = ()) -> Self:
        """Read a TOML file and apply `section.key=value` overrides; errors name the file."""
        raw = apply_overrides(load_toml(path), list(overrides))
        try:
            return cls.from_dict(raw)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            "model": self.model.to_dict(),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
        }

    def replace_model(self, **changes: Any) -> Self:
        return dataclasses.replace(self, model=self.model.replace(**changes))

    def to_toml(self) -> str:
        """The resolved config as TOML text (every field; None fields are left out)."""
        lines: list[str] = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                if value is not None:
                    lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot write non-finite number {value} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"[{section}] must be a table")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        names = ", ".join(sorted(known))
        raise ConfigError(f"unknown field {section}.{unknown[0]} (known: {names})")
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"invalid [{section}]: {err}") from None


def _positive_int(section: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{section}.{name} must be a positive integer, got {value!r}")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_float(section: str, name: str, value: Any) -> None:
    if not _finite(value) or not value > 0:
        raise ConfigError(f"{section}.{name} must be a finite positive number, got {value!r}")


def _choice(section: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{name} must be one of {choices}, got {value!r}")
