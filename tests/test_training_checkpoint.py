"""Checkpoints: safetensors round trip with tied weights, weights_only state, clear errors on
corrupt/foreign files, atomic writes, pruning (best + last K) and averaging."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from transformer.training import checkpoint as ckpt


def _tied_state() -> dict[str, torch.Tensor]:
    shared = torch.randn(6, 4)
    return {"emb.weight": shared, "out.weight": shared, "bias": torch.randn(6)}


def test_weights_round_trip_stores_tied_tensor_once(tmp_path) -> None:
    state = _tied_state()
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(state, path)
    assert sorted(load_file(str(path))) == ["bias", "emb.weight"]  # stored once
    loaded = ckpt.load_weights(path)
    assert sorted(loaded) == sorted(state)
    for name in state:
        assert torch.equal(loaded[name], state[name])
    assert not list(tmp_path.glob(".tmp-*"))


def test_corrupt_truncated_and_foreign_files_give_clear_errors(tmp_path) -> None:
    good = tmp_path / "good.safetensors"
    ckpt.save_weights(_tied_state(), good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:40])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a checkpoint" * 10)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    for path in (truncated, garbage):
        with pytest.raises(ckpt.CheckpointError, match=path.name):
            ckpt.load_weights(path)
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint of this project"):
        ckpt.load_weights(foreign)
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load_weights(tmp_path / "missing.safetensors")


def test_state_is_loaded_weights_only_and_rejects_foreign(tmp_path) -> None:
    state = {"step": 3, "rng": torch.get_rng_state(), "nested": {"a": [1, 2.5, None]}}
    path = tmp_path / "state.pt"
    ckpt.save_state({**state, "format": "transformer-state-v1"}, path)
    loaded = ckpt.load_state(path)
    assert loaded["step"] == 3 and loaded["nested"] == state["nested"]
    assert torch.equal(loaded["rng"], state["rng"])
    foreign = tmp_path / "foreign.pt"
    torch.save({"step": 3}, foreign)
    with pytest.raises(ckpt.CheckpointError, match="not a training state"):
        ckpt.load_state(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "transformer-state-v1", "obj": np.dtype("float32")}, unsafe)
    with pytest.raises(ckpt.CheckpointError, match=r"unsafe\.pt"):
        ckpt.load_state(unsafe)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match=r"garbage\.pt"):
        ckpt.load_state(garbage)


def test_load_into_names_mismatched_tensors(tmp_path) -> None:
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(torch.nn.Linear(3, 4).state_dict(), path)
    with pytest.raises(ckpt.CheckpointError, match="shape"):
        ckpt.load_into(torch.nn.Linear(3, 5), path)
    with pytest.raises(ckpt.CheckpointError, match="missing"):
        ckpt.load_into(torch.nn.Sequential(torch.nn.Linear(3, 4)), path)


def _save(run_dir, step, keep_last, val=None, best=False):
    weights = {"w": torch.full((2,), float(step))}
    return ckpt.save_checkpoint(
        run_dir,
        step,
        weights,
        {"step": step},
        keep_last,
        best_info={"val_loss": val} if best else None,
    )


def test_keeps_best_and_last_k(tmp_path) -> None:
    _save(tmp_path, 1, 2, val=3.0, best=True)
    _save(tmp_path, 2, 2, val=1.0, best=True)
    _save(tmp_path, 3, 2, val=2.0)
    _save(tmp_path, 4, 2, val=2.5)
    _save(tmp_path, 5, 2)
    assert [s for s, _ in ckpt.step_dirs(tmp_path)] == [2, 4, 5]
    assert ckpt.best_step(tmp_path) == 2
    assert json.loads((tmp_path / "checkpoints" / "best.json").read_text())["val_loss"] == 1.0
    latest = ckpt.load_weights(tmp_path / "model.safetensors")["w"]
    assert torch.equal(latest, torch.full((2,), 5.0))


def test_failed_save_leaves_previous_checkpoints_intact(tmp_path, monkeypatch) -> None:
    _save(tmp_path, 1, 3)
    before = (tmp_path / "checkpoints" / "step-00000001" / "model.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated kill during the save)")

    monkeypatch.setattr(ckpt, "state_bytes", boom)
    with pytest.raises(OSError):
        _save(tmp_path, 2, 3)
    assert [s for s, _ in ckpt.step_dirs(tmp_path)] == [1]  # no half-written step-2
    after = (tmp_path / "checkpoints" / "step-00000001" / "model.safetensors").read_bytes()
    assert after == before


def test_average_is_elementwise_mean_and_keeps_ties(tmp_path) -> None:
    paths, states = [], []
    for i in range(3):
        state = _tied_state()
        states.append(state)
        paths.append(tmp_path / f"{i}.safetensors")
        ckpt.save_weights(state, paths[-1])
    avg = ckpt.average(paths)
    for name in ("emb.weight", "bias"):
        expected = np.mean([s[name].numpy().astype(np.float64) for s in states], axis=0)
        np.testing.assert_allclose(avg[name].numpy(), expected, rtol=1e-6)
    assert avg["out.weight"] is avg["emb.weight"]
    other = tmp_path / "other.safetensors"
    ckpt.save_weights({"bias": torch.zeros(6)}, other)
    with pytest.raises(ckpt.CheckpointError, match="cannot average"):
        ckpt.average([paths[0], other])
