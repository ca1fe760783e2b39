"""RunConfig: TOML sections, overrides, clear errors, round trip, the demo preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from transformer.config import ConfigError, ModelConfig, load_toml
from transformer.training.config import DataConfig, RunConfig, TrainConfig
from transformer.training.copy_task import DEMO_CONFIG, copy_sequences, split_copy

REPO = Path(__file__).resolve().parents[1]


def test_sections_preset_and_overrides(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        '[model]\npreset = "tiny"\nd_model = 64\n[data]\nmax_tokens = 100\n'
        "[train]\nwarmup = 10\nbetas = [0.8, 0.9]\n"
    )
    run = RunConfig.from_toml(path, ["train.max_steps=7", "model.n_heads=2"])
    assert run.model == ModelConfig.preset("tiny", d_model=64, n_heads=2)
    assert run.data == DataConfig(max_tokens=100)
    assert run.train == TrainConfig(warmup=10, max_steps=7, betas=(0.8, 0.9))


def test_to_toml_round_trips(tmp_path) -> None:
    run = RunConfig.from_dict(
        {
            "model": {"preset": "tiny", "d_k": 16, "d_v": 16},
            "data": {"task": "multi30k", "data_dir": 'a "b"\\c'},
            "train": {"eps": 1e-9, "clip_norm": 0.5},
        }
    )
    path = tmp_path / "out.toml"
    path.write_text(run.to_toml())
    assert RunConfig.from_toml(path) == run


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.warmup=0", "train.warmup must be a positive integer"),
        ("train.amp='fp8'", "train.amp must be one of"),
        ("data.task='wmt'", "data.task must be one of"),
        ("train.max_step=3", "unknown field train.max_step"),
        ("model.d_model=30", "divisible"),
        ("data.copy_min_len=20", "copy_min_len"),
        ("optim.lr=1", r"unknown section \[optim\]"),
        ("train.betas=[0.9]", "train.betas"),
        ("data.split_punct=1", "data.split_punct must be true or false"),
    ],
)
def test_bad_values_name_the_file_and_field(tmp_path, override: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[model]\npreset = "tiny"\n')
    with pytest.raises(ConfigError, match=message) as err:
        RunConfig.from_toml(path, [override])
    assert "bad.toml" in str(err.value)


def test_copy_task_config_file_is_the_demo_config() -> None:
    assert load_toml(REPO / "configs" / "copy-task.toml") == DEMO_CONFIG


def test_copy_sequences_are_seeded_and_held_out_is_unseen() -> None:
    seqs = copy_sequences(50, 10, 2, 6, seed=3)
    assert seqs == copy_sequences(50, 10, 2, 6, seed=3)
    assert all(2 <= len(s) <= 6 and all(4 <= x < 10 for x in s) for s in seqs)
    train, val = split_copy(300, 40, 8, 3, 5, seed=1)
    assert len(val) == 40 and not {tuple(s) for s in val} & {tuple(s) for s in train}
    assert len({tuple(s) for s in val}) == 40
    with pytest.raises(ValueError, match="too few distinct"):
        split_copy(10, 50, 5, 1, 1, seed=0)  # only one possible sequence


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_config_file_loads(path: Path) -> None:
    if "[train]" in path.read_text(encoding="utf-8"):
        RunConfig.from_toml(path)
    else:  # a model-only preset
        ModelConfig.from_dict(load_toml(path)["model"])


@pytest.mark.parametrize("pair", ["de-en", "en-de"])
def test_multi30k_configs_hold_the_recipe(pair: str) -> None:
    """The best recipe is the default: no --set needed (docs/results.md)."""
    run = RunConfig.from_toml(REPO / "configs" / f"multi30k-{pair}.toml")
    m, d, t = run.model, run.data, run.train
    assert (m.activation, m.init_std, m.dropout) == ("gelu", 0.04, 0.2)
    assert (d.src_lang, d.tgt_lang) == tuple(pair.split("-"))
    assert (d.split_punct, d.max_tokens) == (True, 1024)
    assert (t.max_steps, t.max_minutes, t.warmup, t.warmup_fraction) == ("auto", 60, 600, 0.0)
    assert (t.lr_scale, t.schedule, t.amp, t.keep_last) == (0.424, "linear", "native", 5)


def test_label_smoothing_of_an_older_config_under_model_moves_to_train(tmp_path) -> None:
    """Older config.toml files (and checkpoints) kept ε_ls under [model]; the loss reads it
    from [train] now: an old file keeps its value, a [train] value wins over it."""
    old = tmp_path / "config.toml"
    old.write_text('[model]\npreset = "tiny"\nlabel_smoothing = 0.0\n[train]\nwarmup = 4\n')
    run = RunConfig.from_toml(old)
    assert run.train.label_smoothing == 0.0 and not hasattr(run.model, "label_smoothing")
    both = RunConfig.from_toml(old, ["train.label_smoothing=0.2"])
    assert both.train.label_smoothing == 0.2
    assert ModelConfig.from_dict({"label_smoothing": 0.1}) == ModelConfig()
    assert "label_smoothing" in RunConfig.from_toml(old).to_toml().split("[train]")[1]
    with pytest.raises(ConfigError, match=r"train\.label_smoothing"):
        TrainConfig(label_smoothing=1.0)


def test_val_bleu_all_takes_the_whole_validation_split() -> None:
    from transformer.decoding import SpecialIds
    from transformer.training.val_bleu import BleuProbe

    assert TrainConfig(val_bleu="all").val_bleu == "all"
    with pytest.raises(ConfigError, match=r'train\.val_bleu must be an integer >= 0 or "all"'):
        TrainConfig(val_bleu="some")
    sources, refs = [[4, 5], [6], [7, 8]], ["a", "b", "c"]
    probe = BleuProbe.sample(sources, refs, "all", str, SpecialIds(bos=1, eos=2, pad=0))
    assert probe == BleuProbe.sample(sources, refs, 3, str, SpecialIds(bos=1, eos=2, pad=0))
    assert len(probe.sources) == 3
