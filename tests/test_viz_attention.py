"""`transformer plot attention`: the heatmaps show the model's own attention weights."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

from transformer.cli import main
from transformer.models import GPT
from transformer.viz.attention import sentence_attention, token_labels
from transformer.viz.attention_plot import attention_figure, save_figure
from transformer.viz.loaded import LoadedRun
from viz_runs import make_run

TEXT = "Ein Hund läuft im Schnee."


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("viz") / "run", layers=2, heads=3)


@pytest.fixture(scope="module")
def loaded(run_path):
    return LoadedRun.load(run_path)


@pytest.fixture(scope="module")
def result(loaded):
    return sentence_attention(loaded.model, loaded.tokenizer, TEXT, loaded.translator)


def _reference(loaded, result):
    """The model's own need_weights output for the source and its translation, computed
    here from the ids (not through the viz code)."""
    tok = loaded.tokenizer
    src_ids = tok.encode(TEXT)
    out_ids = loaded.translator.translate([TEXT])[0].hypotheses[0].tokens
    src = torch.tensor([src_ids])
    tgt = torch.tensor([[tok.bos_id, *out_ids[:-1]]])
    with torch.no_grad():
        _, weights = loaded.model(src, tgt, need_weights=True)
    assert len(result.output_tokens) == len(out_ids)
    return {"encoder": weights.encoder, "decoder": weights.decoder, "cross": weights.cross}


def _panels(fig):
    return [ax for ax in fig.axes if ax.images]


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_heatmaps_are_the_models_weights(loaded, result, kind):
    reference = _reference(loaded, result)[kind]
    view = result.views[kind]
    fig = attention_figure(view)
    panels = _panels(fig)
    assert len(panels) == 2 * 3  # layers × heads
    for i, ax in enumerate(panels):
        layer, head = divmod(i, 3)
        data = np.asarray(ax.images[0].get_array())
        np.testing.assert_allclose(data.sum(axis=-1), 1.0, atol=1e-5)  # over the keys
        np.testing.assert_allclose(data, reference[layer][0, head].numpy(), atol=1e-6)
        assert ax.get_title() == f"layer {layer}, head {head}"
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == view.keys


def test_axes_carry_the_tokens(loaded, result):
    tok = loaded.tokenizer
    assert result.views["encoder"].keys == token_labels(tok, tok.encode(TEXT))
    assert "".join(result.source_tokens).replace("@@", "") == TEXT.replace(" ", "")
    cross = result.views["cross"]
    assert cross.queries == result.output_tokens and cross.keys == result.source_tokens
    assert result.views["decoder"].keys[0] == "<s>"
    causal = result.views["decoder"].weights  # (L, H, T, T): no weight on the future
    assert torch.all(causal.triu(diagonal=1) == 0)


def test_panel_count_follows_the_choice(result):
    view = result.views["cross"]
    assert len(_panels(attention_figure(view, layers=[1], heads=[2]))) == 1
    assert len(_panels(attention_figure(view, layers=[0]))) == 3
    averaged = attention_figure(view, heads=[0, 2], average_heads=True)
    assert len(_panels(averaged)) == 2
    mean = (view.weights[1, 0] + view.weights[1, 2]) / 2
    np.testing.assert_allclose(_panels(averaged)[1].images[0].get_array(), mean, atol=1e-6)
    with pytest.raises(ValueError, match="3 heads"):
        attention_figure(view, heads=[3])


def test_png_and_svg_are_written_and_decodable(result, tmp_path):
    fig = attention_figure(result.views["encoder"], layers=[0])
    png = save_figure(fig, tmp_path / "a.png")
    with Image.open(png) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 100
    svg = save_figure(fig, tmp_path / "a.svg")
    assert ET.parse(svg).getroot().tag.endswith("svg")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_figure(fig, tmp_path / "a.jpg")


def test_cli_writes_the_figure(run_path, tmp_path, capsys):
    out = tmp_path / "fig" / "cross.png"
    argv = ["plot", "attention", str(run_path), TEXT, "--kind", "cross", "--out", str(out)]
    assert main([*argv, "--layer", "1"]) == 0
    assert "3 panels" in capsys.readouterr().out
    with Image.open(out) as image:
        image.verify()
    assert main([*argv, "--head", "7"]) == 2
    assert "0 .. 2" in capsys.readouterr().err
    assert main(["plot", "attention", str(tmp_path), TEXT]) == 2
    assert "config.toml not found" in capsys.readouterr().err


def test_a_gpt_reads_its_own_text(loaded):
    torch.manual_seed(3)
    gpt = GPT(loaded.run.model_config).eval()
    result = sentence_attention(gpt, loaded.tokenizer, TEXT)
    assert list(result.views) == ["decoder"] and result.output == ""
    ids = torch.tensor([loaded.tokenizer.encode(TEXT)])
    with torch.no_grad():
        _, reference = gpt(ids, need_weights=True)
    fig = attention_figure(result.views["decoder"], layers=[1])
    for head, ax in enumerate(_panels(fig)):
        np.testing.assert_allclose(ax.images[0].get_array(), reference[1][0, head], atol=1e-6)
    assert [t.get_text() for t in ax.get_yticklabels()] == result.source_tokens
