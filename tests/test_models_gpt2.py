"""GPT-2 against Hugging Face `transformers.GPT2LMHeadModel` (randomly initialised, saved to a
temporary directory; nothing is downloaded): the converted GPT's logits equal HF's to 1e-5 in
float32, on the reference core and on the fast engine, and greedy generation gives the same
tokens as HF `generate(do_sample=False)`. Also the new ModelConfig options against their
closed forms, and `transformer convert gpt2` writing a run that `generate` opens."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from transformer.cli import main as cli_main
from transformer.config import ConfigError, ModelConfig
from transformer.convert.gpt2 import config_from_hf, convert_state_dict, from_hf
from transformer.decoding import generate
from transformer.fast import optimize
from transformer.layers import FeedForward, TokenEmbedding
from transformer.models import GPT

transformers = pytest.importorskip("transformers", reason="GPT2LMHeadModel is the reference")

VOCAB = 50257  # GPT-2's, so that the converted run opens with GPT-2's tokenizer
# initializer_range 0.1 (GPT-2: 0.02) puts the FFN's pre-activations where exact GELU and its
# tanh form differ by more than the tolerance (5e-4 on the logits; 1e-6 at 0.02).
SMALL = dict(
    vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, initializer_range=0.1
)
F32 = dict(rtol=0.0, atol=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


def hf_model(seed: int = 0, **overrides) -> transformers.GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(**{**SMALL, **overrides}, attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # HF zero-initialises biases and sets LayerNorms to 1/0: vary them
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def ours(hf) -> GPT:
    return from_hf(hf.config.to_dict(), hf.state_dict())


def ids(seed: int = 1, rows: int = 3, length: int = 20) -> torch.Tensor:
    return torch.randint(0, VOCAB, (rows, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast engine"])
def test_logits_equal_gpt2_lm_head_model(fast):
    hf = hf_model()
    model = ours(hf)
    if fast:
        optimize(model)
    x = ids()
    with torch.inference_mode():
        expected = hf(input_ids=x).logits
        torch.testing.assert_close(model(x), expected, **F32)
        # Incremental decoding with the KV cache: the prompt, then one token at a time.
        cache = model.new_cache()
        steps = [model(x[:, :12], cache=cache)]
        steps += [model(x[:, t : t + 1], cache=cache) for t in range(12, x.shape[1])]
        torch.testing.assert_close(torch.cat(steps, dim=1), expected, **F32)
        # The tolerance tells the options apart: exact GELU or a √d_model scale would fail.
        for change in ({"activation": "gelu"}, {"scale_embedding": True}):
            wrong = GPT(model.config.replace(**change)).eval()
            wrong.load_state_dict(model.state_dict())
            assert (wrong(x) - expected).abs().max() > 1e-4, change


@pytest.mark.parametrize("act", ["gelu_new", "gelu_pytorch_tanh", "gelu", "relu"])
def test_logits_equal_for_each_activation_and_untied_head(act):
    hf = hf_model(seed=2, activation_function=act, tie_word_embeddings=False, n_inner=48)
    model = ours(hf)
    assert model.output_proj is not None and model.config.d_ff == 48
    x = ids(3)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), hf(input_ids=x).logits, **F32)


def test_training_mode_gradients_equal_hf():
    """Dropout 0 in training mode: the same loss and the same gradient of every weight."""
    zero = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = hf_model(seed=4, **zero).train()
    model = ours(hf).train()
    x = ids(5, rows=2, length=16)
    hf_loss = hf(input_ids=x, labels=x).loss
    logits = model(x)
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten())
    torch.testing.assert_close(loss, hf_loss, rtol=0, atol=1e-5)
    hf_loss.backward()
    loss.backward()
    theirs = {n: p.grad for n, p in hf.named_parameters()}
    mine = convert_state_dict(theirs, model.config.n_decoder_layers)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, mine[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast engine"])
def test_greedy_generation_equals_hf_generate(fast):
    hf = hf_model(seed=6)
    model = ours(hf)
    if fast:
        optimize(model)
    prompt = ids(7, rows=2, length=5)
    n = 30
    with torch.inference_mode():
        expected = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=n,
            min_new_tokens=n,
            pad_token_id=0,
        )
    got = generate(model, prompt, n, temperature=0.0, max_positions=SMALL["n_positions"])
    assert got.tolist() == expected.tolist()


def test_config_options_keep_defaults_and_match_closed_forms():
    cfg = ModelConfig()
    assert cfg.scale_embedding is True and cfg.activation == "relu"
    x = torch.linspace(-4, 4, 101)
    ffn = FeedForward(1, 1, "gelu_tanh")
    closed = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(ffn.act(x), closed, rtol=0, atol=1e-6)
    emb, plain = TokenEmbedding(10, 16), TokenEmbedding(10, 16, scale=False)
    plain.load_state_dict(emb.state_dict())
    i = torch.arange(10)[None]
    torch.testing.assert_close(emb(i), plain(i) * 4.0)
    assert torch.equal(plain(i)[0], plain.weight)
    with pytest.raises(ConfigError, match="activation"):
        ModelConfig(activation="swish")
    with pytest.raises(ConfigError, match="scale_embedding"):
        ModelConfig(scale_embedding=1)


def test_config_from_hf_rejects_what_we_do_not_implement():
    base = transformers.GPT2Config(**SMALL).to_dict()
    cfg = config_from_hf(base)
    assert (cfg.norm_first, cfg.positional, cfg.tie_output, cfg.scale_embedding) == (
        True,
        "learned",
        True,
        False,
    )
    assert (cfg.activation, cfg.layer_norm_eps, cfg.max_len) == ("gelu_tanh", 1e-5, 64)
    for change, match in (
        ({"model_type": "bert"}, "model_type"),
        ({"activation_function": "swish"}, "activation_function"),
        ({"scale_attn_weights": False}, "scale_attn_weights"),
        ({"scale_attn_by_inverse_layer_idx": True}, "inverse_layer_idx"),
        ({"add_cross_attention": True}, "cross"),
    ):
        with pytest.raises(ConfigError, match=match):
            config_from_hf({**base, **change})
    state = hf_model().state_dict()
    del state["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(KeyError, match=r"h\.1\.mlp\.c_fc\.bias"):
        convert_state_dict(state, 2)


@pytest.mark.parametrize("safe", [True, False])
def test_cli_convert_gpt2_then_generate(tmp_path, safe, capsys):
    """`transformer convert gpt2` writes a run directory; `transformer generate` on it
    continues a prompt exactly as HF's greedy generate does (GPT-2's own tokenizer)."""
    from transformer.rundir import RunDir
    from transformer.tokenizers import ByteBPE, gpt2_files

    hf = hf_model(seed=8)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=safe)
    assert cli_main(["convert", "gpt2", str(tmp_path / "hf"), str(tmp_path / "run")]) == 0
    run = RunDir.open(tmp_path / "run")
    assert run.is_lm and run.config.data.block_size == 64
    tok = ByteBPE.from_gpt2(*gpt2_files())
    assert run.tokenizer.tokens == tok.tokens and run.tokenizer.merges == tok.merges
    model = copy.deepcopy(run.load_model())
    x = ids(9)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), hf(input_ids=x).logits, **F32)
    capsys.readouterr()
    text = "Hello, world"
    prompt = torch.tensor([tok.encode(text)])
    args = ["generate", str(tmp_path / "run"), "--prompt", text, "--temperature", "0"]
    assert cli_main([*args, "--max-new-tokens", "12"]) == 0
    with torch.inference_mode():
        expected = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=12,
            min_new_tokens=12,
            pad_token_id=0,
        )
    assert (
        capsys.readouterr().out == text + tok.decode(expected[0, prompt.shape[1] :].tolist()) + "\n"
    )


def test_cli_convert_gpt2_errors(tmp_path, capsys):
    assert cli_main(["convert", "gpt2", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "config.json" in capsys.readouterr().err
    hf_model(n_embd=16, vocab_size=300).save_pretrained(tmp_path / "hf")
    assert cli_main(["convert", "gpt2", str(tmp_path / "hf"), str(tmp_path / "out")]) == 2
    assert "50257" in capsys.readouterr().err
