"""scripts/hf_peer.py: the peer's clock schedule, batching and checkpoint averaging, checked
against a piecewise-linear interpolation, the pairs themselves and a plain mean."""

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "hf_peer.py"


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("hf_peer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("warmup_frac", [0.111, 0.5, 1000 / 1800])
def test_rate_is_linear_up_then_down_on_the_clock(peer, warmup_frac):
    budget, peak = 3600.0, 1e-3
    for elapsed in np.linspace(0.0, budget * 1.1, 67):
        expected = np.interp(min(elapsed / budget, 1.0), [0, warmup_frac, 1], [0, peak, 0])
        assert peer._rate(elapsed, budget, peak, warmup_frac) == pytest.approx(expected, abs=1e-15)


def test_batches_hold_every_pair_once_within_the_target_budget(peer):
    rng = random.Random(0)
    pairs = [
        ([rng.randrange(3, 50) for _ in range(rng.randrange(1, 30))],
         [rng.randrange(3, 50) for _ in range(rng.randrange(1, 40))])
        for _ in range(500)
    ]  # fmt: skip
    seen = []
    for src, tgt in peer._batches(pairs, 256, random.Random(1)):
        assert src.size(0) == tgt.size(0)
        assert tgt[:, 0].eq(peer.BOS).all()
        assert src.size(0) == 1 or src.size(0) * (tgt.size(1) - 1) <= 256  # y </s> positions
        for x, y in zip(src.tolist(), tgt.tolist(), strict=True):
            x = x[: len(x) - next((i for i, t in enumerate(reversed(x)) if t), len(x))]
            y = y[1 : len(y) - next((i for i, t in enumerate(reversed(y)) if t), len(y))]
            seen.append((tuple(x), tuple(y)))
    assert sorted(seen) == sorted((tuple(x), tuple(y)) for x, y in pairs)


def test_averaged_checkpoints_are_the_mean_of_the_last_ones(peer, tmp_path):
    states = [{"w": torch.randn(3, 4), "n": torch.tensor([i])} for i in range(5)]
    for step, state in enumerate(states):
        torch.save(state, tmp_path / f"step-{step * 50:06d}.pt")
    avg, used = peer._averaged(tmp_path, 3)
    assert used == ["step-000100.pt", "step-000150.pt", "step-000200.pt"]
    torch.testing.assert_close(avg["w"], (states[2]["w"] + states[3]["w"] + states[4]["w"]) / 3)
    assert avg["n"].dtype == torch.int64
