"""Configuration: frozen dataclasses, the paper's presets, TOML files and `--set` overrides.

`ModelConfig.preset("base" | "big" | "tiny", **overrides)` gives the paper's Table 3 rows
(Vaswani et al., 2017) and a CPU-sized model. Every invalid setting raises `ConfigError`
naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field."""


@dataclass(frozen=True)
class ModelConfig:
    """The architecture. Defaults are the paper's base model (Table 3) with a shared
    37,000-token source/target vocabulary (Section 5.1).

    d_k / d_v default to d_model // n_heads (Section 3.2.2), each on its own: Table 3 row (B)
    sets d_k alone.
    `norm_first=False` is the paper's post-norm LayerNorm(x + Sublayer(x)) (Section 3.1);
    True is pre-norm x + Sublayer(LayerNorm(x)), with a final LayerNorm after each stack.
    `init_std=None` is Xavier-uniform linear weights and N(0, 1/d_model) embeddings (the
    paper gives no initialisation); a number draws every linear weight and embedding from
    N(0, init_std²) instead, as BERT, GPT-2 and Hugging Face's MarianMT do (0.02).
    `activation`: "relu" (the paper's FFN, Eq. 2), "gelu" (exact, erf: BERT) or "gelu_tanh"
    (GELU's tanh approximation, Hendrycks & Gimpel 2016: GPT-2's "gelu_new").
    `scale_embedding=True` multiplies token embeddings by √d_model (Section 3.4); GPT-2 and
    BERT do not (False).
    """

    src_vocab_size: int = 37000
    tgt_vocab_size: int = 37000
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_k: int | None = None
    d_v: int | None = None
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation: str = "relu"
    share_embeddings: bool = True
    tie_output: bool = True
    positional: str = "sinusoidal"
    norm_first: bool = False
    layer_norm_eps: float = 1e-5
    max_len: int = 1024
    pad_id: int = 0
    init_std: float | None = None
    scale_embedding: bool = True

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            _check_positive_int(name, getattr(self, name))
        for name in ("n_encoder_layers", "n_decoder_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("d_k", "d_v"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        if (self.d_k is None or self.d_v is None) and self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) "
                "unless d_k and d_v are given"
            )
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value < 1.0:  # NaN fails too
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        _check_choice("activation", self.activation, ("relu", "gelu", "gelu_tanh"))
        if not isinstance(self.scale_embedding, bool):
            raise ConfigError(
                f"scale_embedding must be true or false, got {self.scale_embedding!r}"
            )
        _check_choice("positional", self.positional, ("sinusoidal", "learned"))
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ConfigError(
                "share_embeddings needs src_vocab_size == tgt_vocab_size "
                f"(got {self.src_vocab_size} and {self.tgt_vocab_size})"
            )
        if not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise ConfigError(f"pad_id must be a valid token id, got {self.pad_id}")
        eps = self.layer_norm_eps
        if not isinstance(eps, int | float) or isinstance(eps, bool) or not 0 < eps < math.inf:
            raise ConfigError(f"layer_norm_eps must be a finite number > 0, got {eps!r}")
        if self.init_std is not None and not (
            isinstance(self.init_std, int | float)
            and not isinstance(self.init_std, bool)
            and 0.0 < self.init_std < 1.0
        ):
            raise ConfigError(
                f"init_std must be a number in (0, 1) or left out, got {self.init_std!r}"
            )

    @property
    def head_dim_k(self) -> int:
        """d_k: query/key size of one head."""
        return self.d_k if self.d_k is not None else self.d_model // self.n_heads

    @property
    def head_dim_v(self) -> int:
        """d_v: value size of one head (d_model // n_heads unless given: Table 3 row (B)
        changes d_k alone and keeps d_v = 64)."""
        return self.d_v if self.d_v is not None else self.d_model // self.n_heads

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Self:
        """A named preset ("base", "big", "tiny") with fields overridden by keyword."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Build from a mapping; an unknown key raises ConfigError naming it. A
        `label_smoothing` key (older config.toml files and checkpoints kept the loss's ε_ls
        with the model; it is `TrainConfig.label_smoothing` now) is ignored here."""
        values = {k: v for k, v in values.items() if k != LEGACY_LABEL_SMOOTHING}
        return _from_dict(cls, values, "model")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Self:
        return self.from_dict({**self.to_dict(), **changes})


# The paper's Table 3 (base, big) and a model small enough for a laptop CPU.
# A [model] key of older config.toml files and checkpoints: the loss's ε_ls, read by the loss
# from [train] now (`RunConfig.from_dict` moves an old one there).
LEGACY_LABEL_SMOOTHING = "label_smoothing"

PRESETS: dict[str, dict[str, Any]] = {
    "base": {},
    "big": {"d_model": 1024, "d_ff": 4096, "n_heads": 16, "dropout": 0.3},
    "tiny": {
        "src_vocab_size": 1000,
        "tgt_vocab_size": 1000,
        "d_model": 128,
        "n_heads": 4,
        "d_ff": 512,
        "n_encoder_layers": 2,
        "n_decoder_layers": 2,
        "max_len": 512,
    },
}


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")


def _from_dict(cls: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown field {section}.{unknown[0]} (known: {', '.join(sorted(known))})"
        )
    try:
        return cls(**values)
    except TypeError as err:  # e.g. a value of the wrong type reaching a comparison
        raise ConfigError(f"invalid {section} config: {err}") from err


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict; a syntax error names the file and the position."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from err


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse one `--set section.key=value`; the value is read as TOML (numbers, booleans,
    strings, lists), falling back to a bare string."""
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return parts, value


def apply_overrides(config: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Return a copy of a nested config dict with `--set a.b=value` items applied."""
    out = _deep_copy(config)
    for item in items:
        parts, value = parse_override(item)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
