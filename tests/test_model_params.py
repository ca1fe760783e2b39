"""Parameter counts: the paper's Table 3 (37,000-token shared vocabulary) within 7%, and the
closed form `parameter_count` equal to the instantiated modules for many settings."""

from __future__ import annotations

import pytest
import torch

from transformer.config import ModelConfig
from transformer.models import GPT, Transformer, count_parameters, parameter_count

# Table 3 rows: (overrides of the base model, params x 10^6 as printed in the paper).
TABLE3 = [
    ({}, 65),
    ({"d_model": 1024, "d_ff": 4096, "n_heads": 16, "dropout": 0.3}, 213),  # big
    ({"n_encoder_layers": 2, "n_decoder_layers": 2}, 36),
    ({"n_encoder_layers": 4, "n_decoder_layers": 4}, 50),
    ({"n_encoder_layers": 8, "n_decoder_layers": 8}, 80),
    ({"d_model": 256, "d_k": 32, "d_v": 32}, 28),
    ({"d_model": 1024, "d_k": 128, "d_v": 128}, 168),
    ({"d_ff": 1024}, 53),
    ({"d_ff": 4096}, 90),
    ({"d_k": 16}, 58),  # row (B): d_k alone shrinks W^Q, W^K
    ({"d_k": 32}, 60),
]


@pytest.mark.parametrize("overrides, paper_millions", TABLE3)
def test_table3_counts_within_7_percent(overrides, paper_millions):
    cfg = ModelConfig.preset("base", **overrides)
    assert cfg.src_vocab_size == cfg.tgt_vocab_size == 37000 and cfg.share_embeddings
    ours = parameter_count(cfg)
    assert abs(ours / (paper_millions * 1e6) - 1) <= 0.07, (ours, paper_millions)


def test_base_count_by_hand():
    """Base, hand arithmetic: 37000·512 shared embedding (also the output layer);
    encoder layer 4·(512·512+512) + (2·512·2048 + 2048 + 512) + 2·2·512; decoder layer
    two attentions + FFN + three LayerNorms."""
    attn = 4 * (512 * 512 + 512)
    ffn = 2 * 512 * 2048 + 2048 + 512
    expected = 37000 * 512 + 6 * (attn + ffn + 2048) + 6 * (2 * attn + ffn + 3072)
    assert expected == 63_082_496
    assert parameter_count(ModelConfig.preset("base")) == expected
    row_b = ModelConfig.preset("base", d_k=16)  # Table 3 row (B): d_k alone, d_v stays 64
    assert (row_b.head_dim_k, row_b.head_dim_v) == (16, 64)


SETTINGS = [
    {},
    {"norm_first": True},
    {"share_embeddings": False, "src_vocab_size": 37, "tie_output": False},
    {"share_embeddings": False, "tie_output": True, "positional": "learned"},
    {"d_k": 5, "d_v": 7, "n_heads": 3, "activation": "gelu"},
    {"n_encoder_layers": 0, "n_decoder_layers": 1, "norm_first": True},
]


@pytest.mark.parametrize("overrides", SETTINGS)
def test_closed_form_equals_instantiated_model(overrides):
    values = dict(
        src_vocab_size=50,
        tgt_vocab_size=50,
        d_model=16,
        n_heads=4,
        d_ff=24,
        n_encoder_layers=2,
        n_decoder_layers=3,
        max_len=30,
    )
    cfg = ModelConfig.from_dict({**values, **overrides})
    assert count_parameters(Transformer(cfg)) == parameter_count(cfg)
    assert count_parameters(GPT(cfg)) == parameter_count(cfg, "gpt")


def test_tied_and_shared_embeddings_are_one_tensor():
    cfg = ModelConfig.preset("tiny")
    model = Transformer(cfg)
    assert model.src_embed.weight is model.tgt_embed.weight is model.output_weight
    untied = Transformer(cfg.replace(share_embeddings=False, tie_output=False))
    assert untied.src_embed.weight is not untied.tgt_embed.weight
    assert untied.output_weight is not untied.tgt_embed.weight


def test_initialisation():
    """Linear weights Xavier-uniform (|w| <= sqrt(6/(fan_in+fan_out)) per block), biases 0,
    embeddings N(0, 1/D), pad row 0."""
    cfg = ModelConfig.preset("tiny")
    model = Transformer(cfg)
    qkv = model.encoder_layers[0].self_attn.qkv_proj
    bound = (6 / (2 * cfg.d_model)) ** 0.5
    assert qkv.weight.abs().max() <= bound and qkv.weight.abs().max() > 0.9 * bound
    assert torch.all(qkv.bias == 0)
    ffn = model.decoder_layers[1].ffn.linear1
    assert ffn.weight.abs().max() <= (6 / (cfg.d_model + cfg.d_ff)) ** 0.5
    emb = model.src_embed.weight[1:]
    assert abs(emb.std().item() - cfg.d_model**-0.5) < 0.05 * cfg.d_model**-0.5
    assert torch.all(model.src_embed.weight[cfg.pad_id] == 0)


@pytest.mark.parametrize("model_cls", [Transformer, GPT])
def test_init_std_draws_every_weight_from_a_normal(model_cls):
    """`init_std`: linear weights, embeddings and learned positions N(0, std²), against the
    normal distribution's closed forms (std, and P(|w| < std) = 0.6827; a uniform law with the
    same std gives 0.5774), biases and padding rows 0, LayerNorms untouched."""
    torch.manual_seed(0)
    std = 0.05
    cfg = ModelConfig.preset("tiny", init_std=std, positional="learned", share_embeddings=False)
    model = model_cls(cfg)
    tables = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    tables += [p for n, p in model.named_parameters() if n.endswith(("embed.weight", "table"))]
    assert len(tables) >= 8
    for w in tables:
        w = w[1:] if w.shape[0] == cfg.tgt_vocab_size else w  # drop a padding row
        assert abs(w.std().item() - std) < 0.03 * std
        assert abs(w.abs().lt(std).float().mean().item() - 0.6827) < 0.02
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and m.bias is not None:
            assert torch.all(m.bias == 0)
    if model_cls is Transformer:
        assert torch.all(model.src_embed.weight[cfg.pad_id] == 0)
    norms = [p for n, p in model.named_parameters() if "norm" in n and n.endswith("weight")]
    assert norms and all(torch.all(p == 1) for p in norms)
    # the default is not a normal law: the FFN's W_2 is Xavier-uniform
    default = model_cls(cfg.replace(init_std=None))
    w2 = next(m.weight for m in default.modules() if getattr(m, "in_features", 0) == cfg.d_ff)
    assert abs(w2.abs().lt(w2.std()).float().mean().item() - 0.5774) < 0.02
