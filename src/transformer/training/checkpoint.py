"""Checkpoints: weights as safetensors (never pickle), training state with weights_only=True.

Run-directory layout (everything written atomically: a temporary name, then a rename):

    RUN_DIR/config.toml                 the resolved RunConfig (rebuilds the model)
    RUN_DIR/tokenizer.json              the tokenizer, where the task has one
    RUN_DIR/model.safetensors           weights of the most recent checkpoint
    RUN_DIR/checkpoints/step-00001000/  one complete checkpoint:
        model.safetensors               weights
        state.pt                        optimizer, step, RNG states, data position, best metric
    RUN_DIR/checkpoints/best.json       {"step": N, "val_loss": x, ...} of the best checkpoint
    RUN_DIR/log.jsonl, RUN_DIR/tb/      metrics (see `training.logging`)

A checkpoint directory is first written as `.tmp-step-…` and renamed when complete, so a kill
during a save leaves either the old set of checkpoints or the new one, never half a checkpoint.
Tied parameters (shared embeddings) are stored once; the alias names go into the safetensors
metadata and are restored on load.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

FORMAT = "transformer-weights-v1"
STEP_DIR = re.compile(r"^step-(\d{8})$")


class CheckpointError(RuntimeError):
    """A missing, corrupt or foreign checkpoint; the message names the file."""


def _atomic_path(path: Path) -> Path:
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def save_weights(state: dict[str, Tensor], path: str | os.PathLike[str]) -> None:
    """Write a state dict as safetensors atomically; tensors sharing storage are stored once."""
    path = Path(path)
    unique: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state.items():
        storage = tensor.untyped_storage().data_ptr()
        key = (storage, tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        unique[name] = tensor.detach().to("cpu").contiguous()
    meta = {"format": FORMAT, "aliases": json.dumps(aliases)}
    tmp = _atomic_path(path)
    save_file(unique, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_weights(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict:
    """Read weights written by `save_weights`; a corrupt or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a checkpoint of this project (safetensors metadata format="
            f"{meta.get('format')!r}, expected {FORMAT!r})"
        )
    for alias, target in json.loads(meta.get("aliases", "{}")).items():
        state[alias] = state[target]
    return state


def load_into(model: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Load weights into a model; names missing/unexpected tensors or shape mismatches."""
    state = load_weights(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the model (missing: {missing[:5]}, "
            f"unexpected: {unexpected[:5]}); was it trained with a different config?"
        )
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise CheckpointError(
                f"{path}: {name} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(own[name].shape)}"
            )
    model.load_state_dict(state)


def save_state(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the training state (tensors and plain Python values only) atomically."""
    path = Path(path)
    tmp = _atomic_path(path)
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training state with `weights_only=True` (no arbitrary code on load)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: training state not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged/foreign pickle
        raise CheckpointError(f"{path}: not a readable training state ({err})") from None
    if not isinstance(state, dict) or state.get("format") != "transformer-state-v1":
        raise CheckpointError(f"{path}: not a training state of this project")
    return state


def step_dirs(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Complete checkpoint directories of a run, sorted by step."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = STEP_DIR.match(child.name)
        if match and (child / "model.safetensors").is_file() and (child / "state.pt").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def write_json(path: Path, value: Any) -> None:
    tmp = _atomic_path(path)
    tmp.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def best_step(run_dir: str | os.PathLike[str]) -> int | None:
    """The step of the best checkpoint (highest validation BLEU, else lowest NLL), or None."""
    path = Path(run_dir) / "checkpoints" / "best.json"
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["step"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: damaged ({err})") from None


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    weights: dict[str, Tensor],
    state: dict[str, Any],
    keep_last: int,
    best_info: dict[str, float] | None = None,
) -> Path:
    """Write checkpoints/step-N atomically, update model.safetensors, best.json; prune.

    Keeps the `keep_last` most recent checkpoints and the best one. `best_info` (the
    validation figures) marks this checkpoint as the new best in best.json.
    """
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_weights(weights, tmp / "model.safetensors")
    save_state({**state, "format": "transformer-state-v1"}, tmp / "state.pt")
    if final.exists():  # re-saving the same step (e.g. Ctrl-C right after a periodic save)
        shutil.rmtree(final)
    os.replace(tmp, final)
    save_weights(weights, run_dir / "model.safetensors")
    if best_info is not None:
        write_json(root / "best.json", {"step": step, **best_info})
    prune(run_dir, keep_last)
    return final


def prune(run_dir: str | os.PathLike[str], keep_last: int) -> None:
    """Delete checkpoints that are neither among the last `keep_last` nor the best."""
    dirs = step_dirs(run_dir)
    best = best_step(run_dir)
    keep = {s for s, _ in dirs[-max(keep_last, 1) :]} | ({best} if best is not None else set())
    for s, path in dirs:
        if s not in keep:
            shutil.rmtree(path, ignore_errors=True)


def average(paths: list[str | os.PathLike[str]]) -> dict[str, Tensor]:
    """The element-wise mean of several checkpoints' weights (Vaswani et al., 2017, Section 6.1:
    the base models average the last 5 checkpoints). Accumulates in float64; returns each
    tensor in its stored dtype. Tied names keep sharing one tensor."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    states = [load_weights(p) for p in paths]
    first = states[0]
    for p, s in zip(paths[1:], states[1:]):
        if set(s) != set(first) or any(s[k].shape != first[k].shape for k in first):
            raise CheckpointError(f"{p}: its tensors differ from {paths[0]}'s; cannot average")
    out: dict[str, Tensor] = {}
    done: dict[int, Tensor] = {}  # id of a loaded tensor -> its average (aliases share one)
    for name, tensor in first.items():
        ptr = id(tensor)
        if ptr in done:
            out[name] = done[ptr]
            continue
        if not tensor.is_floating_point():
            out[name] = tensor.clone()
        else:
            total = sum(s[name].double() for s in states)
            out[name] = (total / len(states)).to(tensor.dtype)
        done[ptr] = out[name]
    return out
