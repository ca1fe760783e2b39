"""`RunDir`: a run directory opened as a library object (config, tokenizer, weights)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from transformer.rundir import IdTokenizer, RunDir, RunOpenError, resolve_device
from transformer.training.config import RunConfig
from transformer.training.run import train

CONFIG = """
[model]
preset = "tiny"
src_vocab_size = 12
tgt_vocab_size = 12
d_model = 16
n_heads = 2
d_ff = 32
n_encoder_layers = 1
n_decoder_layers = 1
[data]
task = "copy"
copy_train_size = 64
copy_val_size = 8
max_tokens = 128
[train]
max_steps = 4
warmup = 2
val_every = 2
save_every = 2
log_every = 2
progress = false
device = "cpu"
"""


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("rundir")
    (root / "c.toml").write_text(CONFIG)
    train(RunConfig.from_toml(root / "c.toml"), root / "run", tensorboard=False)
    return root / "run"


def test_open_loads_the_saved_weights(run_path):
    run = RunDir.open(run_path)
    assert isinstance(run.tokenizer, IdTokenizer) and run.config.data.task == "copy"
    model = run.load_model()
    saved = model.state_dict()
    on_disk = load_file(run_path / "model.safetensors")
    assert not model.training
    for name, tensor in on_disk.items():
        assert torch.equal(saved[name], tensor), name


def test_average_of_two_is_the_mean(run_path):
    run = RunDir.open(run_path)
    steps = sorted((run_path / "checkpoints").glob("step-*"))[-2:]
    first, second = (load_file(p / "model.safetensors") for p in steps)
    averaged = run.load_model(average=2).state_dict()
    for name in first:
        assert torch.allclose(averaged[name], (first[name] + second[name]) / 2), name


def test_errors_name_the_file(tmp_path, run_path):
    with pytest.raises(RunOpenError, match=r"config\.toml not found"):
        RunDir.open(tmp_path)
    with pytest.raises(RunOpenError, match=r"no-such\.safetensors"):
        RunDir.open(run_path).load_model(weights=str(tmp_path / "no-such.safetensors"))
    with pytest.raises(RunOpenError, match="token ids must be in"):
        IdTokenizer(12).encode("3 99")
    with pytest.raises(RunOpenError, match="unknown device"):
        resolve_device("tpu-9")
