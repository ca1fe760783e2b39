"""Hugging Face `BertForMaskedLM` weights -> our `BERT` (`transformer convert bert`).

    cfg, n_segments = config_from_hf(json.load(open("config.json")))
    model = BERT(cfg, n_segments)
    model.load_state_dict(convert_state_dict(hf_state, cfg.n_encoder_layers))

Name map (layer i; Q, K, V are concatenated into our fused projection, rows [Q; K; V]):

    bert.embeddings.word_embeddings            embed            (also the tied output weight)
    bert.embeddings.position_embeddings        pos.table
    bert.embeddings.token_type_embeddings      segment
    bert.embeddings.LayerNorm                  embed_norm
    ...layer.i.attention.self.{query,key,value} layers.i.self_attn.qkv_proj
    ...layer.i.attention.output.dense          layers.i.self_attn.out_proj
    ...layer.i.attention.output.LayerNorm      layers.i.self_norm
    ...layer.i.intermediate.dense              layers.i.ffn.linear1
    ...layer.i.output.dense                    layers.i.ffn.linear2
    ...layer.i.output.LayerNorm                layers.i.ffn_norm
    cls.predictions.transform.dense            head_dense
    cls.predictions.transform.LayerNorm        head_norm
    cls.predictions.bias                       head_bias

Only torch and safetensors are needed (never `transformers`); nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from transformer.config import ConfigError, ModelConfig
from transformer.models.bert import BERT, bert_config
from transformer.training.checkpoint import load_weights, save_weights

_LAYER = {
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "self_norm",
    "intermediate.dense": "ffn.linear1",
    "output.dense": "ffn.linear2",
    "output.LayerNorm": "ffn_norm",
}
_SEGMENT = "embeddings.token_type_embeddings.weight"
_TOP = {
    "embeddings.word_embeddings.weight": "embed.weight",
    "embeddings.position_embeddings.weight": "pos.table",
    "embeddings.token_type_embeddings.weight": "segment.weight",
    "embeddings.LayerNorm.weight": "embed_norm.weight",
    "embeddings.LayerNorm.bias": "embed_norm.bias",
}
_HEAD = {
    "cls.predictions.transform.dense.weight": "head_dense.weight",
    "cls.predictions.transform.dense.bias": "head_dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "head_norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "head_norm.bias",
    "cls.predictions.bias": "head_bias",
}


def config_from_hf(hf: dict[str, Any]) -> tuple[ModelConfig, int]:
    """(ModelConfig, n_segments) from a `BertConfig` dict (config.json)."""
    if hf.get("model_type", "bert") != "bert":
        raise ConfigError(f"model_type is {hf.get('model_type')!r}, expected 'bert'")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ConfigError(f"hidden_act {hf['hidden_act']!r}: only 'gelu' (erf) is supported")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError("only absolute (learned) position embeddings are supported")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        raise ConfigError("a BERT decoder (is_decoder / add_cross_attention) is not supported")
    if not hf.get("tie_word_embeddings", True):
        raise ConfigError("tie_word_embeddings is false: our MLM head is always tied")
    try:
        cfg = bert_config(
            src_vocab_size=hf["vocab_size"],
            d_model=hf["hidden_size"],
            n_heads=hf["num_attention_heads"],
            d_ff=hf["intermediate_size"],
            n_encoder_layers=hf["num_hidden_layers"],
            dropout=hf.get("hidden_dropout_prob", 0.1),
            attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
            max_len=hf["max_position_embeddings"],
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
            pad_id=hf.get("pad_token_id") or 0,
            init_std=hf.get("initializer_range", 0.02),
        )
    except KeyError as err:
        raise ConfigError(f"the BERT config lacks the field {err.args[0]!r}") from None
    return cfg, int(hf.get("type_vocab_size", 2))


def convert_state_dict(hf: dict[str, Tensor], n_layers: int) -> dict[str, Tensor]:
    """Our `BERT` state dict from a `BertForMaskedLM` one ("bert." prefix optional)."""
    prefix = "bert." if any(k.startswith("bert.") for k in hf) else ""

    def get(name: str) -> Tensor:
        if name not in hf:
            raise KeyError(f"the Hugging Face state dict lacks {name!r}")
        return hf[name]

    out = {ours: get(prefix + theirs) for theirs, ours in _TOP.items() if theirs != _SEGMENT}
    if prefix + _SEGMENT in hf:
        out["segment.weight"] = hf[prefix + _SEGMENT]
    for i in range(n_layers):
        src, dst = f"{prefix}encoder.layer.{i}.", f"layers.{i}."
        for kind in ("weight", "bias"):
            qkv = [get(f"{src}attention.self.{p}.{kind}") for p in ("query", "key", "value")]
            out[f"{dst}self_attn.qkv_proj.{kind}"] = torch.cat(qkv, dim=0)  # rows [Q; K; V]
            for theirs, ours in _LAYER.items():
                out[f"{dst}{ours}.{kind}"] = get(f"{src}{theirs}.{kind}")
    out.update({ours: get(theirs) for theirs, ours in _HEAD.items()})
    decoder = hf.get("cls.predictions.decoder.weight")
    if decoder is not None and not torch.equal(decoder, out["embed.weight"]):
        raise ValueError("the MLM decoder weight differs from the word embeddings (untied)")
    return {k: v.detach().clone() for k, v in out.items()}


def from_hf(hf_config: dict[str, Any], hf_state: dict[str, Tensor]) -> BERT:
    """A `BERT` holding the weights of a `BertForMaskedLM` (config dict + state dict)."""
    cfg, n_segments = config_from_hf(hf_config)
    model = BERT(cfg, n_segments)
    model.load_state_dict(convert_state_dict(hf_state, cfg.n_encoder_layers))
    return model.eval()


def read_hf_dir(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """config.json and the weights (model.safetensors, else pytorch_model.bin) of a
    `save_pretrained` directory."""
    path = Path(path)
    try:
        hf_config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}/config.json: cannot read a Hugging Face config ({err})") from err
    if (path / "model.safetensors").is_file():
        return hf_config, load_file(str(path / "model.safetensors"))
    if (path / "pytorch_model.bin").is_file():
        state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return hf_config, state
    raise ConfigError(f"{path}: neither model.safetensors nor pytorch_model.bin found")


def save_converted(model: BERT, out_dir: str | os.PathLike, tokenizer=None) -> None:
    """Write OUT/model.safetensors, OUT/bert.json (config + n_segments) and, when given,
    OUT/tokenizer.json (our WordPiece)."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.state_dict(), out / "model.safetensors")
    meta = {"model": model.config.to_dict(), "n_segments": model.n_segments}
    (out / "bert.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save(out / "tokenizer.json")


def load_converted(out_dir: str | os.PathLike) -> BERT:
    """The `BERT` that `save_converted` wrote."""

    out = Path(out_dir)
    meta = json.loads((out / "bert.json").read_text(encoding="utf-8"))
    model = BERT(ModelConfig.from_dict(meta["model"]), meta["n_segments"])
    model.load_state_dict(load_weights(out / "model.safetensors"))
    return model.eval()
