"""Checkpoints: weights as safetensors (never pickle), training state with weights_only=True.

Run-directory layout (every file written atomically and durably through `transformer.durable`):

    RUN_DIR/config.toml                 the resolved RunConfig (rebuilds the model)
    RUN_DIR/tokenizer.json              the tokenizer, where the task has one
    RUN_DIR/model.safetensors           weights of the most recent checkpoint
    RUN_DIR/checkpoints/step-00001000/  one complete checkpoint:
        model.safetensors               weights
        state.pt                        optimizer, step, RNG states, data position, best metric
        checksums.json                  sha256 of both files, recorded at save time
    RUN_DIR/checkpoints/best.json       {"step": N, "val_loss": x, ...} of the best checkpoint
    RUN_DIR/log.jsonl, RUN_DIR/tb/      metrics (see `training.logging`)

A checkpoint directory is written under a temporary name and renamed when complete (and
fsync'ed), so a kill or a crash during a save leaves either the old set of checkpoints or the
new one, never half a checkpoint. `verify` re-checks a checkpoint (the recorded checksums and
the safetensors header) so that resume can skip one damaged later (a torn disk, a bad copy).
Tied parameters (shared embeddings) are stored once; the alias names go into the safetensors
metadata and are restored on load. Weights with a NaN or inf are never saved.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from transformer import durable

FORMAT = "transformer-weights-v1"
STATE_FORMAT = "transformer-state-v1"
STEP_DIR = re.compile(r"^step-(\d{8})$")
CHECKSUMS = "checksums.json"


class CheckpointError(RuntimeError):
    """A missing, corrupt or foreign checkpoint; the message names the file."""


def weights_bytes(state: dict[str, Tensor]) -> bytes:
    """A state dict as safetensors bytes; tensors sharing storage are stored once."""
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
    return safetensors_bytes(unique, metadata=meta)


def save_weights(state: dict[str, Tensor], path: str | os.PathLike[str]) -> None:
    """Write a state dict as safetensors atomically and durably (see `weights_bytes`)."""
    durable.write_bytes(path, weights_bytes(state))


def nonfinite(state: dict[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity."""
    return [
        name
        for name, t in state.items()
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]


def load_weights(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict:
    """Read weights written by `save_weights`; a corrupt or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
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
    for alias, target in _aliases(path, meta, state).items():
        state[alias] = state[target]
    return state


def _aliases(path: Path, meta: dict[str, str], state: dict[str, Tensor]) -> dict[str, str]:
    try:
        aliases = json.loads(meta.get("aliases", "{}"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: damaged 'aliases' metadata (not JSON: {err})") from None
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v in state for k, v in aliases.items()
    ):
        raise CheckpointError(
            f"{path}: damaged 'aliases' metadata (expected names of stored tensors)"
        )
    return aliases


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


def state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_state(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the training state (tensors and plain Python values only) atomically."""
    durable.write_bytes(path, state_bytes(state))


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training state with `weights_only=True` (no arbitrary code on load)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: training state not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged/foreign pickle
        raise CheckpointError(f"{path}: not a readable training state ({err})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
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
    """Strict JSON (non-finite numbers as strings), atomically and durably."""
    durable.write_json(path, value)


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
    validation figures) marks this checkpoint as the new best in best.json. Refuses
    (CheckpointError, nothing written) weights that hold a NaN or an infinity.
    """
    bad = nonfinite(weights)
    if bad:
        raise CheckpointError(
            f"step {step}: refusing to save weights with NaN/inf values ({', '.join(bad[:3])})"
        )
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    blobs = {"model.safetensors": weights_bytes(weights)}
    blobs["state.pt"] = state_bytes({**state, "format": STATE_FORMAT})
    sums = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    with durable.atomic_dir(final) as tmp:  # re-saving a step swaps the two atomically
        for name, blob in blobs.items():
            durable.write_bytes(tmp / name, blob)
        write_json(tmp / CHECKSUMS, {"step": step, "sha256": sums})
    durable.write_bytes(run_dir / "model.safetensors", blobs["model.safetensors"])
    if best_info is not None:
        write_json(root / "best.json", {"step": step, **best_info})
    prune(run_dir, keep_last)
    return final


def prune(run_dir: str | os.PathLike[str], keep_last: int) -> None:
    """Delete checkpoints that are neither among the last `keep_last` nor the best (each is
    first renamed to a temporary name, so a kill mid-delete leaves no partial checkpoint)."""
    dirs = step_dirs(run_dir)
    best = best_step(run_dir)
    keep = {s for s, _ in dirs[-max(keep_last, 1) :]} | ({best} if best is not None else set())
    for s, path in dirs:
        if s not in keep:
            doomed = path.with_name(f"{durable.PREFIX}{os.getpid()}-prune-{path.name}")
            os.rename(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _header_problem(path: Path) -> str | None:
    """Why `path` is not a complete safetensors file of this project, or None."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n <= 0 or 8 + n > size:
            return f"{path.name}: no valid safetensors header ({size} bytes)"
        try:
            header = json.loads(fh.read(n))
            end = max([t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"])
            fmt = header.get("__metadata__", {}).get("format")
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return f"{path.name}: damaged safetensors header"
    if 8 + n + end != size:
        return f"{path.name}: {size} bytes but its header describes {8 + n + end} (torn)"
    if fmt != FORMAT:
        return f"{path.name}: not a checkpoint of this project (format {fmt!r})"
    return None


def verify(path: str | os.PathLike[str]) -> str | None:
    """Why the checkpoint directory `path` cannot be trusted, or None when it verifies: the
    sha256 sums recorded at save time, then the safetensors header. (A checkpoint from before
    checksums were recorded is checked by its header alone.)"""
    path = Path(path)
    try:
        problem = _header_problem(path / "model.safetensors")
        if problem:
            return problem
        sums_path = path / CHECKSUMS
        if not sums_path.exists():
            return None
        try:
            sums = json.loads(sums_path.read_text(encoding="utf-8"))["sha256"]
        except (ValueError, KeyError, TypeError) as err:
            return f"{CHECKSUMS}: damaged ({err})"
        for name in ("model.safetensors", "state.pt"):
            if sums.get(name) != _sha256(path / name):
                return f"{name}: sha256 differs from the one recorded at save time"
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    return None


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint directory out of the way (kept, never deleted)."""
    target = path.with_name(f"damaged-{path.name}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"damaged{n}-{path.name}")
    os.rename(path, target)
    durable.fsync_dir(path.parent)
    return target


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
