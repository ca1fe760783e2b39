"""`transformer plot lr` and `plot training`: the schedule and the curves of log.jsonl."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from transformer.cli import main
from transformer.training.config import RunConfig
from transformer.viz.curves import PANELS, lr_figure, read_runs, training_figure
from viz_runs import write_log

CONFIG = """
[model]
preset = "tiny"
d_model = 64
[train]
max_steps = 300
warmup = 50
lr_scale = 2.0
"""


def test_lr_is_equation_3_with_warmup_marked(tmp_path):
    (tmp_path / "c.toml").write_text(CONFIG)
    fig = lr_figure(RunConfig.from_toml(tmp_path / "c.toml"))
    ax = fig.axes[0]
    steps, rates = ax.lines[0].get_data()
    expected = [2.0 * 64**-0.5 * min(s**-0.5, s * 50**-1.5) for s in range(1, 301)]  # eq. (3)
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert list(steps) == list(range(1, 301))
    assert ax.lines[1].get_xdata()[0] == 50  # the warm-up line
    assert ax.lines[2].get_ydata()[0] == pytest.approx(max(expected))  # the peak


def test_lr_cosine_is_nanogpts_rule_and_auto_needs_steps(tmp_path, capsys):
    (tmp_path / "c.toml").write_text(CONFIG)
    cosine = ["train.schedule=cosine", "train.lr=0.01", "train.min_lr=0.001"]
    run = RunConfig.from_toml(tmp_path / "c.toml", cosine)
    _, rates = lr_figure(run, steps=200).axes[0].lines[0].get_data()

    def get_lr(it):  # nanoGPT's train.py, 1-based steps, decay to min_lr at step 200
        if it <= 50:
            return 0.01 * it / 50
        ratio = (it - 50) / (200 - 50)
        return 0.001 + 0.5 * (1.0 + np.cos(np.pi * ratio)) * (0.01 - 0.001)

    np.testing.assert_allclose(rates, [get_lr(s) for s in range(1, 201)], rtol=1e-12)
    auto = [*cosine, "train.max_steps=auto", "train.max_minutes=5"]
    with pytest.raises(ValueError, match="--steps"):
        lr_figure(RunConfig.from_toml(tmp_path / "c.toml", auto))
    argv = ["plot", "lr", str(tmp_path / "c.toml"), "--out", str(tmp_path / "a.png")]
    assert main([*argv, *(x for a in auto for x in ("--set", a))]) == 2
    assert "--steps" in capsys.readouterr().err


def test_cli_lr_writes_png_and_svg(tmp_path, capsys):
    (tmp_path / "c.toml").write_text(CONFIG)
    assert main(["plot", "lr", str(tmp_path / "c.toml"), "--out", str(tmp_path / "lr.png")]) == 0
    with Image.open(tmp_path / "lr.png") as image:
        image.verify()
    svg = tmp_path / "lr.svg"
    argv = ["plot", "lr", str(tmp_path / "c.toml"), "--set", "train.schedule=linear"]
    assert main([*argv, "--out", str(svg)]) == 0
    assert ET.parse(svg).getroot().tag.endswith("svg")
    assert main(["plot", "lr", str(tmp_path / "none.toml")]) == 2
    assert main(["plot", "lr", str(tmp_path / "c.toml"), "--out", "x.jpg"]) == 2
    assert ".png or .svg" in capsys.readouterr().err


def test_training_overlays_runs_against_step_and_minutes(tmp_path):
    for name, steps in (("a", 6), ("b", 4)):
        (tmp_path / name).mkdir()
        write_log(tmp_path / name, steps)
    runs = read_runs([tmp_path / "a", tmp_path / "b"])
    fig = training_figure(runs)
    axes = fig.axes
    assert len(axes) == len(PANELS) * 2
    loss_by_step, loss_by_minutes = axes[0], axes[1]
    assert len(loss_by_step.lines) == 4  # train and val of each run
    x, y = loss_by_step.lines[0].get_data()  # run a, train loss against step
    assert list(x) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(y, [5.0 / s**0.5 for s in range(1, 7)])
    minutes = loss_by_minutes.lines[0].get_xdata()  # 30 s per step since the data record
    np.testing.assert_allclose(minutes, [0.5 * s for s in range(1, 7)])
    bleu = axes[4].lines[0]
    assert list(bleu.get_xdata()) == [2, 4, 6] and list(bleu.get_ydata()) == [4.0, 8.0, 12.0]
    assert {line.get_color() for line in loss_by_step.lines} == {"C0", "C1"}


def test_cli_training(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    write_log(tmp_path / "run", 4)
    out = tmp_path / "t.png"
    assert main(["plot", "training", str(tmp_path / "run"), "--out", str(out)]) == 0
    with Image.open(out) as image:
        image.verify()
    assert main(["plot", "training", str(tmp_path / "missing")]) == 2
    assert "log.jsonl not found" in capsys.readouterr().err
