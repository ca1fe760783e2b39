"""The paper's configs (`configs/paper-base.toml`, `paper-big.toml`) and the parallel-text
task they train on: a smoke run of a few steps on a toy corpus on the CPU, and the FLOP plan
of the paper's runs against Table 2."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from transformer.config import ConfigError
from transformer.models.flops import forward_flops, training_flops
from transformer.training.config import RunConfig
from transformer.training.data import DataError, parallel_files
from transformer.training.run import train

REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "the",
    "a",
    "house",
    "cat",
    "dog",
    "runs",
    "sleeps",
    "in",
    "on",
    "under",
    "big",
    "small",
    "red",
    "green",
]


def _toy_corpus(root: Path, n: int = 120) -> None:
    rng = random.Random(0)
    for split, count in (("train", n), ("newstest2013", 16)):
        lines = [" ".join(rng.choices(WORDS, k=rng.randint(3, 9))) for _ in range(count)]
        (root / f"{split}.en").write_text("\n".join(lines) + "\n")
        with gzip.open(root / f"{split}.de.gz", "wt") as fh:  # one side gzipped
            fh.write("\n".join(" ".join(reversed(line.split())) for line in lines) + "\n")


def _smoke(tmp_path: Path, name: str) -> None:
    _toy_corpus(tmp_path)
    overrides = [
        f"data.data_dir={tmp_path}",
        "data.bpe_merges=50",
        "data.max_tokens=64",
        "train.accum_steps=2",
        "train.max_steps=2",
        "train.warmup=1",
        "train.val_every=2",
        "train.save_every=2",
        "train.progress=false",
        "train.device=cpu",
    ]
    run = RunConfig.from_toml(REPO / "configs" / f"paper-{name}.toml", overrides)
    result = train(run, tmp_path / "run", tensorboard=False)
    assert result.step == 2 and result.status == "finished"
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_paper_base_trains_on_a_toy_corpus(tmp_path):
    _smoke(tmp_path, "base")


@pytest.mark.slow
def test_paper_big_trains_on_a_toy_corpus(tmp_path):
    _smoke(tmp_path, "big")


def test_parallel_files_name_what_is_missing(tmp_path):
    run = RunConfig.from_toml(REPO / "configs" / "paper-base.toml", [f"data.data_dir={tmp_path}"])
    with pytest.raises(DataError, match=r"train\.en"):
        parallel_files(run, "train")
    with pytest.raises(ConfigError, match="train_prefix"):
        RunConfig.from_toml(REPO / "configs" / "paper-base.toml", ["data.train_prefix="])


@pytest.mark.parametrize(
    ("name", "steps", "table2"), [("base", 100_000, 3.3e18), ("big", 300_000, 2.3e19)]
)
def test_paper_runs_cost_less_than_table_2s_hardware_budget(name, steps, table2):
    """Table 2 gives GPU-hours times peak FLOP/s (12 h / 3.5 days on 8 P100s); the model's own
    FLOPs of 25,000 + 25,000 tokens a step must fit under it (MFU < 1) and be of its order."""
    run = RunConfig.from_toml(REPO / "configs" / f"paper-{name}.toml")
    length = 30  # WMT14 en-de sentences are about 30 subword tokens long
    batch = 25_000 / length
    total = (
        training_flops(
            forward_flops(
                run.model.replace(src_vocab_size=37000, tgt_vocab_size=37000), 1, length, length
            )
        )
        * batch
        * steps
    )
    assert 0.1 * table2 < total < table2
