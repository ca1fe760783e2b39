"""ModelConfig: Table 3 presets, validation that names the field, TOML and --set overrides."""

from pathlib import Path

import pytest

from transformer.config import ConfigError, ModelConfig, apply_overrides, load_toml
from transformer.training.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_presets_match_table3():
    base, big = ModelConfig.preset("base"), ModelConfig.preset("big")
    # Table 3: N, d_model, d_ff, h, d_k, d_v, P_drop, eps_ls
    assert (base.n_encoder_layers, base.n_decoder_layers) == (6, 6)
    assert (base.d_model, base.d_ff, base.n_heads) == (512, 2048, 8)
    assert (base.head_dim_k, base.head_dim_v, base.dropout) == (64, 64, 0.1)
    assert TrainConfig().label_smoothing == 0.1  # eps_ls: the loss's, so the training recipe's
    assert (big.d_model, big.d_ff, big.n_heads, big.dropout) == (1024, 4096, 16, 0.3)
    assert (big.head_dim_k, big.head_dim_v) == (64, 64)
    assert ModelConfig.preset("tiny", d_model=64).d_model == 64


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"d_model": 100, "n_heads": 8}, "d_model"),
        ({"dropout": -0.1}, "dropout"),
        ({"n_heads": 0}, "n_heads"),
        ({"positional": "rotary"}, "positional"),
        ({"init_std": 0.0}, "init_std"),
        ({"init_std": True}, "init_std"),
        ({"init_std": "0.02"}, "init_std"),
        ({"colour": "red"}, "colour"),
        (
            {"share_embeddings": True, "src_vocab_size": 10, "tgt_vocab_size": 11},
            "share_embeddings",
        ),
    ],
)
def test_invalid_settings_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        ModelConfig.preset("base", **overrides)


def test_preset_toml_files_equal_presets():
    for name in ("base", "big", "tiny"):
        values = load_toml(CONFIGS / f"model-{name}.toml")["model"]
        assert ModelConfig.from_dict(values) == ModelConfig.preset(name)


def test_overrides_parse_toml_values():
    out = apply_overrides(
        {"model": {"d_model": 512}},
        ["model.d_model=256", "train.name=abc", "model.norm_first=true"],
    )
    assert out == {"model": {"d_model": 256, "norm_first": True}, "train": {"name": "abc"}}
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        apply_overrides({}, ["model.d_model"])


def test_bad_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_toml(bad)
