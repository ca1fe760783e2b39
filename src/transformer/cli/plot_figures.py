"""`transformer plot attention | lr | training`: the figures of issue 28 (PNG or SVG).

- `attention RUN_DIR TEXT`: per-head heatmaps of one kind of attention for one sentence
  (translated first with the run's search) or, for a GPT run, for the text itself.
- `lr CONFIG`: the learning-rate schedule that config trains with, warm-up marked.
- `training RUN_DIR [RUN_DIR ...]`: loss, perplexity, BLEU, lr and tokens/s from log.jsonl,
  against step and against minutes, runs overlaid.
"""

from __future__ import annotations

import argparse
import json

from transformer.cli.errors import UserError
from transformer.config import ConfigError
from transformer.rundir import RunOpenError
from transformer.training.config import RunConfig
from transformer.viz.attention import sentence_attention
from transformer.viz.attention_plot import attention_figure, save_figure
from transformer.viz.curves import lr_figure, read_runs, training_figure
from transformer.viz.loaded import LoadedRun


def add_parsers(which: argparse._SubParsersAction) -> None:
    """Add the three sub-commands to `transformer plot`'s sub-parsers."""
    att = which.add_parser(
        "attention",
        help="attention heatmaps of a sentence (PNG/SVG)",
        description="Translates TEXT with the run (beam search) and draws one heatmap per "
        "(layer, head) of the chosen attention: queries as rows, keys as columns, tokens "
        "on both axes. For a GPT run the text itself is the input.",
    )
    att.add_argument("run_dir", metavar="RUN_DIR", help="a training run directory")
    att.add_argument("text", metavar="TEXT", help="the sentence")
    att.add_argument(
        "--kind",
        choices=("encoder", "decoder", "cross"),
        default=None,
        help="encoder self-, decoder self- or cross-attention (default: encoder; decoder "
        "for a GPT run)",
    )
    att.add_argument("--layer", type=int, default=None, help="one layer (default: all)")
    att.add_argument("--head", type=int, default=None, help="one head (default: all)")
    att.add_argument("--average-heads", action="store_true", help="one panel per layer: mean")
    att.add_argument("--out", default="attention.png", help="file to write (.png or .svg)")
    att.add_argument(
        "--weights", default=None, help="'latest', 'best' or a file (default: recorded)"
    )
    att.add_argument("--beam", type=int, default=None, help="beam size (default: recorded)")
    att.add_argument("--alpha", type=float, default=None, help="length penalty (recorded)")
    att.set_defaults(run=run_attention)

    lr = which.add_parser("lr", help="the learning-rate schedule of a config (PNG/SVG)")
    lr.add_argument("config", metavar="CONFIG", help="a training config (TOML)")
    lr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override")
    lr.add_argument("--out", default="lr.png", help="file to write (.png or .svg)")
    lr.add_argument("--steps", type=int, help='steps to plot (needed where max_steps = "auto")')
    lr.set_defaults(run=run_lr)

    tr = which.add_parser("training", help="training curves from log.jsonl (PNG/SVG)")
    tr.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training run directories")
    tr.add_argument("--out", default="training.png", help="file to write (.png or .svg)")
    tr.set_defaults(run=run_training)


def _check_out(path: str) -> None:

    if not path.lower().endswith((".png", ".svg")):
        raise UserError(f"--out must end in .png or .svg, got {path!r}")


def run_attention(args: argparse.Namespace) -> int:

    _check_out(args.out)
    try:
        loaded = LoadedRun.load(
            args.run_dir, "cpu", beam=args.beam, alpha=args.alpha, weights=args.weights
        )
        result = sentence_attention(loaded.model, loaded.tokenizer, args.text, loaded.translator)
        kind = args.kind or ("decoder" if loaded.kind == "gpt" else "encoder")
        if kind not in result.views:
            raise UserError(f"a GPT run has only decoder self-attention, not {kind!r}")
        view = result.views[kind]
        layers = None if args.layer is None else [args.layer]
        heads = None if args.head is None else [args.head]
        fig = attention_figure(view, layers, heads, args.average_heads)
    except (RunOpenError, ValueError) as err:
        raise UserError(str(err)) from None
    path = save_figure(fig, args.out)
    if result.output:
        print(f"translation: {result.output}")
    panels = len(fig.axes) - 1  # one colour bar
    print(f"wrote {path} ({kind} attention, {panels} panels)")
    return 0


def run_lr(args: argparse.Namespace) -> int:

    _check_out(args.out)
    try:
        run = RunConfig.from_toml(args.config, args.set)
    except (ConfigError, OSError) as err:
        raise UserError(str(err)) from None
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    try:
        figure = lr_figure(run, args.steps)
    except ValueError as err:
        raise UserError(str(err)) from None
    path = save_figure(figure, args.out)
    print(f"wrote {path} ({run.train.schedule}, warmup {run.train.warmup} steps)")
    return 0


def run_training(args: argparse.Namespace) -> int:

    _check_out(args.out)
    try:
        runs = read_runs(args.run_dirs)
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise UserError(str(err)) from None
    path = save_figure(training_figure(runs), args.out)
    print(f"wrote {path} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    return 0
