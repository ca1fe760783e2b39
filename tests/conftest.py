"""Shared fixtures: where the real corpora live, and a seeded RNG for every test.

The test run never downloads (TRANSFORMER_OFFLINE=1; the download tests serve files from a
local server and lift it for themselves)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ["TRANSFORMER_OFFLINE"] = "1"


def data_root() -> Path:
    """`TRANSFORMER_DATA` if set, else `../shared/data` beside the checkout."""
    env = os.environ.get("TRANSFORMER_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def data_dir() -> Path:
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"shared corpora not found at {root} (set TRANSFORMER_DATA)")
    return root


def corpus_dir(name: str) -> Path:
    """The directory of one corpus, or skip the test with the reason."""
    path = data_root() / name
    if not path.is_dir():
        pytest.skip(f"corpus {name!r} not found at {path} (set TRANSFORMER_DATA)")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models run faster on one, and much faster on a busy
    machine (modules use it with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
