"""BERT against Hugging Face `transformers.BertForMaskedLM` (randomly initialised, nothing
downloaded): converted weights give the same logits to 1e-5 in float32."""

from __future__ import annotations

import json

import pytest
import torch

from transformer.cli import main as cli_main
from transformer.config import ConfigError
from transformer.convert.bert import (
    config_from_hf,
    convert_state_dict,
    from_hf,
    load_converted,
)
from transformer.models import BERT
from transformer.models.bert import bert_config

transformers = pytest.importorskip("transformers", reason="BertForMaskedLM is the reference")

SMALL = {
    "vocab_size": 101,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "max_position_embeddings": 40,
    "type_vocab_size": 3,
    "pad_token_id": 0,
}


def tiny_config(**overrides):
    sizes = {"src_vocab_size": 50, "d_model": 16, "n_heads": 2, "d_ff": 32, "max_len": 16}
    return bert_config(**{**sizes, "n_encoder_layers": 1, **overrides})


def hf_model(**overrides) -> transformers.BertForMaskedLM:
    cfg = transformers.BertConfig(**{**SMALL, **overrides}, attn_implementation="eager")
    model = transformers.BertForMaskedLM(cfg).eval()
    with torch.no_grad():  # LayerNorms and biases away from 1 and 0, so that all are checked
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def batch(vocab: int = 101, segments: int = 3):
    ids = torch.randint(1, vocab, (4, 23))
    ids[1, 15:] = 0  # padding
    ids[3, 2:] = 0
    return ids, torch.randint(0, segments, ids.shape)


def test_logits_equal_bert_for_masked_lm():
    hf = hf_model()
    ours = from_hf(hf.config.to_dict(), hf.state_dict())
    ids, seg = batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=seg, attention_mask=(ids != 0).long()).logits
        torch.testing.assert_close(ours(ids, seg), ref, rtol=0, atol=1e-5)
        ref0 = hf(input_ids=ids, attention_mask=(ids != 0).long()).logits  # segments all 0
        torch.testing.assert_close(ours(ids), ref0, rtol=0, atol=1e-5)


def test_hidden_states_and_weights_equal_hf():
    hf = hf_model()
    ours = from_hf(hf.config.to_dict(), hf.state_dict())
    ids, seg = batch()
    with torch.no_grad():
        out = hf.bert(
            input_ids=ids, token_type_ids=seg, attention_mask=(ids != 0).long(),
            output_attentions=True,
        )  # fmt: skip
        hidden, weights = ours.encode(ids, seg, need_weights=True)
    torch.testing.assert_close(hidden, out.last_hidden_state, rtol=0, atol=1e-5)
    for w, ref in zip(weights, out.attentions, strict=True):
        real = ids != 0  # rows of padded queries are irrelevant
        got, want = w.transpose(1, 2)[real], ref.transpose(1, 2)[real]  # (n, H, T)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_training_mode_dropout_differs_eval_is_deterministic():
    model = BERT(tiny_config())
    ids = torch.randint(1, 50, (2, 9))
    model.train()
    assert not torch.equal(model(ids), model(ids))
    model.eval()
    assert torch.equal(model(ids), model(ids))


def test_head_is_tied_to_the_embedding():
    model = BERT(tiny_config())
    names = dict(model.named_parameters())
    assert "head_bias" in names and not any("decoder" in n for n in names)
    assert float(model.embed.weight[0].detach().abs().sum()) == 0.0  # the pad row starts at 0
    model(torch.randint(1, 50, (2, 5))).sum().backward()
    assert model.embed.weight.grad is not None and model.head_bias.grad is not None


def test_no_segments_model_and_input_errors():
    cfg = tiny_config(max_len=8)
    model = BERT(cfg, n_segments=0)
    assert model.segment is None and model(torch.ones(1, 8, dtype=torch.long)).shape == (1, 8, 50)
    with pytest.raises(ValueError, match="no segment embeddings"):
        model(torch.ones(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 50\)"):
        model(torch.full((1, 3), 50))
    with pytest.raises(ValueError, match="segments must lie"):
        BERT(cfg)(torch.ones(1, 3, dtype=torch.long), torch.full((1, 3), 2))
    with pytest.raises(ConfigError, match="post-norm"):
        BERT(cfg.replace(norm_first=True))


def test_config_from_hf_rejects_what_we_do_not_implement():
    base = transformers.BertConfig(**SMALL).to_dict()
    cfg, n_segments = config_from_hf(base)
    assert (cfg.d_model, cfg.d_ff, cfg.n_encoder_layers, n_segments) == (32, 37, 2, 3)
    for change, match in [
        ({"hidden_act": "relu"}, "hidden_act"),
        ({"position_embedding_type": "relative_key"}, "absolute"),
        ({"is_decoder": True}, "decoder"),
        ({"tie_word_embeddings": False}, "tied"),
    ]:
        with pytest.raises(ConfigError, match=match):
            config_from_hf({**base, **change})
    state = hf_model().state_dict()
    del state["bert.encoder.layer.1.output.dense.bias"]
    with pytest.raises(KeyError, match=r"layer\.1\.output\.dense\.bias"):
        convert_state_dict(state, 2)


@pytest.mark.parametrize("safe", [True, False])
def test_cli_convert_bert(tmp_path, safe):
    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=safe)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(96)]
    (tmp_path / "hf" / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    assert cli_main(["convert", "bert", str(tmp_path / "hf"), str(tmp_path / "out")]) == 0
    ours = load_converted(tmp_path / "out")
    ids, seg = batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=seg, attention_mask=(ids != 0).long()).logits
        torch.testing.assert_close(ours(ids, seg), ref, rtol=0, atol=1e-5)
    tok = json.loads((tmp_path / "out" / "tokenizer.json").read_text())
    assert tok["vocab"] == vocab


def test_cli_convert_errors(tmp_path, capsys):
    assert cli_main(["convert", "bert", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "config.json" in capsys.readouterr().err


def test_fill_mask_top_k_equals_hf_probabilities():
    from transformer.decoding.fill_mask import fill_mask
    from transformer.tokenizers import WordPiece

    hf = hf_model()
    ours = from_hf(hf.config.to_dict(), hf.state_dict())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "hat", "."]
    tok = WordPiece(vocab + [f"w{i}" for i in range(101 - len(vocab))])
    text = "A man [MASK] a hat [MASK]."
    got = fill_mask(ours, tok, text, top_k=3)
    ids = torch.tensor([tok.encode(text, add_special_tokens=True)])
    with torch.no_grad():
        probs = torch.softmax(hf(input_ids=ids).logits[0], -1)
    for row, pos in zip(got, (3, 6), strict=True):
        p, i = probs[pos].topk(3)
        assert [t for t, _ in row] == [tok.tokens[j] for j in i.tolist()]
        assert [q for _, q in row] == pytest.approx(p.tolist(), abs=1e-6)
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        fill_mask(ours, tok, "a man")
    with pytest.raises(ValueError, match="reads 40"):
        fill_mask(ours, tok, "a " * 40 + "[MASK]")
