"""A training run directory, opened as a library object: config, tokenizer, weights.

    run = RunDir.open("runs/de-en")
    model = run.load_model(weights="best", average=0, device="cpu")   # eval mode
    run.tokenizer.encode("Ein Hund läuft im Schnee.")

A run directory (written by `transformer train`) holds `config.toml` (the resolved
`RunConfig`), `tokenizer.json` (absent for the copy task, whose lines are token ids; a
`CharTokenizer` or `ByteBPE` for a language-model run, data.task "lm", whose model is a `GPT`;
a `WordPiece` for a masked-LM run, data.task "mlm", whose model is a `BERT`),
`model.safetensors` (the latest weights) and `checkpoints/step-*/` (see
`transformer.training.checkpoint`), and after `transformer evaluate RUN --split val --choose`
`decoding.json`: the decoding settings chosen on validation (`DecodingChoice`, with the score
of every candidate), which `translate` and `evaluate` use when no flag says otherwise. The
command-line tools and the server open runs through this class only, so what "a run" means is
written once.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transformer import runtime
from transformer.config import ConfigError, ModelConfig
from transformer.tokenizers import TokenizerError, WordPiece, load_tokenizer
from transformer.tokenizers.specials import BOS_ID, EOS_ID, PAD_ID
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.task import task_for


class RunOpenError(ValueError):
    """The directory is not a usable run (missing or damaged file, bad request): one line
    naming the file."""


class IdTokenizer:
    """For runs without a tokenizer (the copy task): a line is whitespace-separated token ids
    (specials 0-3: <pad> <s> </s> <unk>); output ids are printed the same way."""

    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        try:
            ids = [int(tok) for tok in text.split()]
        except ValueError:
            raise RunOpenError(f"this run reads token ids, got the line {text!r}") from None
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise RunOpenError(f"token ids must be in [0, {self.vocab_size}), got {text!r}")
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(str(i) for i in ids if i not in (self.pad_id, self.bos_id, self.eos_id))


DECODING_FILE = "decoding.json"
DECODING_FORMAT = "transformer-decoding-v1"


@dataclass(frozen=True)
class DecodingChoice:
    """How a run decodes: the search (beam 1 = greedy; `alpha` the length penalty, Wu et al.
    2016; `exact_stop` the stopping rule of `beam_search`) and the weights: `average` > 1 the
    mean of the last `average` checkpoints (Section 6.1), else `weights` ('latest' or 'best').
    The defaults are the paper's beam 4, alpha 0.6 on the latest weights."""

    beam: int = 4
    alpha: float = 0.6
    exact_stop: bool = False
    weights: str = "latest"
    average: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.beam, int) or isinstance(self.beam, bool) or self.beam < 1:
            raise ValueError(f"beam must be a positive integer, got {self.beam!r}")
        if not isinstance(self.alpha, int | float) or not self.alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        if not isinstance(self.exact_stop, bool):
            raise ValueError(f"exact_stop must be true or false, got {self.exact_stop!r}")
        if not isinstance(self.average, int) or isinstance(self.average, bool) or self.average < 0:
            raise ValueError(f"average must be an integer >= 0, got {self.average!r}")
        if not isinstance(self.weights, str) or not self.weights:
            raise ValueError(f"weights must be 'latest', 'best' or a file, got {self.weights!r}")

    def describe_search(self) -> str:
        if self.beam == 1:
            return "greedy"
        stop = ", exact stop" if self.exact_stop else ""
        return f"beam {self.beam}, alpha {self.alpha:g}{stop}"

    def describe_weights(self) -> str:
        if self.average > 1:
            return f"average of the last {self.average} checkpoints"
        return f"{self.weights} weights"

    def describe(self) -> str:
        return f"{self.describe_search()}, {self.describe_weights()}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DecodingChoice:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**values)


@dataclass(frozen=True)
class RunDir:
    """An opened run directory. `model_config` is the config with the vocabulary sizes of
    the run's tokenizer filled in (what the weights were built with)."""

    path: Path
    config: RunConfig
    model_config: ModelConfig
    tokenizer: object  # a tokenizer of transformer.tokenizers, or IdTokenizer

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """Read config.toml and the tokenizer; raises `RunOpenError` naming the file."""
        path = Path(path)
        config_path = path / "config.toml"
        if not config_path.is_file():
            raise RunOpenError(f"{config_path} not found: is {path} a training run?")
        try:
            config = RunConfig.from_toml(config_path)
            if config.data.task == "copy":
                tokenizer: object = IdTokenizer(config.model.src_vocab_size)
                model_config = config.model
            else:
                tok_path = path / "tokenizer.json"
                if not tok_path.is_file():
                    raise RunOpenError(f"{tok_path} not found")
                tokenizer = (
                    WordPiece.load(tok_path)
                    if config.data.task == "mlm"
                    else load_tokenizer(tok_path)
                )
                vocab = tokenizer.vocab_size
                model_config = config.model.replace(src_vocab_size=vocab, tgt_vocab_size=vocab)
        except (ConfigError, TokenizerError) as err:
            raise RunOpenError(str(err)) from None
        return cls(path, config, model_config, tokenizer)

    def weights_path(self, which: str = "latest") -> Path:
        """'latest' (model.safetensors), 'best' (checkpoints/best.json's step) or a file."""
        if which == "latest":
            return self.path / "model.safetensors"
        if which == "best":
            step = ckpt.best_step(self.path)
            if step is None:
                raise RunOpenError(f"{self.path}: no checkpoints/best.json (no validation yet?)")
            for saved_step, step_path in ckpt.step_dirs(self.path):
                if saved_step == step:
                    return step_path / "model.safetensors"
            raise RunOpenError(f"{self.path}: the best checkpoint (step {step}) is not on disk")
        return Path(which)

    @property
    def is_lm(self) -> bool:
        """Whether the run is a GPT language model (data.task "lm"), not a translator."""
        return self.config.data.task == "lm"

    @property
    def is_mlm(self) -> bool:
        """Whether the run is a BERT masked language model (data.task "mlm")."""
        return self.config.data.task == "mlm"

    def build_model(self) -> nn.Module:
        """A freshly initialised model of this run's architecture (`Transformer`, `GPT` for
        a language-model run, `BERT` with data.n_segments for a masked-LM run)."""
        return task_for(self.config.data).build_model(self.model_config)

    def load_model(
        self, weights: str = "latest", average: int = 0, device: str | torch.device = "cpu"
    ) -> nn.Module:
        """The model with the chosen weights, in eval mode on `device`: `average` > 0 averages
        the last `average` checkpoints (Section 6.1), else `weights` as in `weights_path`."""
        model = self.build_model()
        try:
            if average > 0:
                steps = ckpt.step_dirs(self.path)[-average:]
                if not steps:
                    raise RunOpenError(f"{self.path}: no checkpoints to average")
                model.load_state_dict(ckpt.average([p / "model.safetensors" for _, p in steps]))
            else:
                ckpt.load_into(model, self.weights_path(weights))
        except ckpt.CheckpointError as err:
            raise RunOpenError(str(err)) from None
        return model.to(device).eval()

    # ---- the decoding settings chosen on validation (decoding.json) ----------------------
    @property
    def decoding_path(self) -> Path:
        return self.path / DECODING_FILE

    def recorded_decoding(self) -> tuple[DecodingChoice, dict[str, Any]] | None:
        """The chosen settings and the whole record of decoding.json, or None where the run
        has none; a damaged file is a `RunOpenError` naming it."""
        path = self.decoding_path
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("format") != DECODING_FORMAT:
                raise ValueError(f"format is not {DECODING_FORMAT!r}")
            return DecodingChoice.from_dict(record["settings"]), record
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise RunOpenError(f"{path}: damaged ({err}); choose again with --choose") from None

    def record_decoding(self, choice: DecodingChoice, **record: Any) -> Path:
        """Write decoding.json atomically: the chosen settings, the checkpoints they were
        chosen on and `record` (scores of every candidate, the grid, the data)."""
        value = {
            "format": DECODING_FORMAT,
            "settings": choice.to_dict(),
            "checkpoint_steps": self.checkpoint_steps(),
            **record,
        }
        ckpt.write_json(self.decoding_path, value)
        return self.decoding_path

    def checkpoint_steps(self) -> list[int]:
        """The steps of the checkpoints on disk, oldest first."""
        return [step for step, _ in ckpt.step_dirs(self.path)]

    def best_checkpoint_step(self) -> int | None:
        try:
            return ckpt.best_step(self.path)
        except ckpt.CheckpointError as err:
            raise RunOpenError(str(err)) from None

    def load_choice(self, choice: DecodingChoice, device: str | torch.device = "cpu") -> nn.Module:
        """The model with the weights a `DecodingChoice` names (see `load_model`)."""
        average = choice.average if choice.average > 1 else 0
        return self.load_model(choice.weights, average, device)


def resolve_device(name: str) -> torch.device:
    """`runtime.resolve_device` for a command's --device: errors are `RunOpenError`s."""
    try:
        return runtime.resolve_device(name)
    except ValueError as err:
        raise RunOpenError(f"device {name!r} {err}") from None
