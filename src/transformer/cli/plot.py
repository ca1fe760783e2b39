"""`transformer plot WHAT`: figures and views of the model.

- `positional`: the lecture's Figure 2, the sinusoidal encoding as a PNG heat map.
- `model`: the module tree of a config with parameter counts (text).
- `attention`, `lr`, `training`: attention heatmaps, the schedule, training curves
  (`plot_figures.py`).
"""

from __future__ import annotations

import argparse

from transformer.cli import plot_figures
from transformer.cli.errors import UserError
from transformer.config import ConfigError, ModelConfig, apply_overrides, load_toml
from transformer.models import GPT, Transformer, parameter_count
from transformer.viz.model_tree import model_tree
from transformer.viz.positional import plot_positional_encoding


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "plot", help="figures: positional encoding, model, attention, lr, training"
    )
    which = parser.add_subparsers(dest="plot", metavar="WHAT", required=True)

    pos = which.add_parser(
        "positional",
        help="the sinusoidal positional encoding (PNG)",
        description="Draws p_t[2k] = sin(ω_k t), p_t[2k+1] = cos(ω_k t), "
        "ω_k = 1/10000^(2k/d), as the lecture's Figure 2.",
    )
    pos.add_argument("--out", default="positional_encoding.png", help="PNG path to write")
    pos.add_argument("--dim", type=int, default=128, help="d_model (default 128)")
    pos.add_argument("--positions", type=int, default=50, help="positions (default 50)")
    pos.set_defaults(run=run_positional)

    mod = which.add_parser(
        "model",
        help="module tree with parameter counts (text)",
        description="Builds the model of a config (no training) and prints "
        "its modules with parameter counts.",
    )
    mod.add_argument("--preset", default="base", help="ModelConfig preset: base, big, tiny")
    mod.add_argument(
        "--config",
        default=None,
        help="TOML file; its [model] table (or the whole file) is the config",
    )
    mod.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="model.KEY=VALUE",
        help="override a model field, e.g. --set model.d_model=256",
    )
    mod.add_argument("--gpt", action="store_true", help="the decoder-only GPT instead")
    mod.add_argument("--depth", type=int, default=4, help="levels to print (default 4)")
    mod.set_defaults(run=run_model)
    plot_figures.add_parsers(which)


def run_positional(args: argparse.Namespace) -> int:

    if args.dim < 2 or args.positions < 1:
        raise UserError(
            f"--dim must be >= 2 and --positions >= 1 (got {args.dim}, {args.positions})"
        )
    path = plot_positional_encoding(args.out, d_model=args.dim, n_positions=args.positions)
    print(f"wrote {path} ({args.positions} positions × {args.dim} dimensions)")
    return 0


def _model_config(args: argparse.Namespace):

    try:
        if args.config:
            data = load_toml(args.config)
            values = data.get("model", data)
        else:
            values = dict(ModelConfig.preset(args.preset).to_dict())
        values = apply_overrides({"model": values}, args.set)
        unknown = sorted(set(values) - {"model"})
        if unknown:
            raise UserError(f"--set: only model.* fields apply here, got {unknown[0]}.*")
        return ModelConfig.from_dict(values["model"])
    except ConfigError as err:
        raise UserError(str(err)) from None


def run_model(args: argparse.Namespace) -> int:

    cfg = _model_config(args)
    model = GPT(cfg) if args.gpt else Transformer(cfg)
    print(model_tree(model, max_depth=args.depth))
    kind = "gpt" if args.gpt else "transformer"
    print(f"closed-form count: {parameter_count(cfg, kind):,}")
    return 0
