"""The `transformer` command: a thin layer that parses arguments and calls the library.

Each sub-command lives in its own module with two functions, `add_parser(subparsers)` and
`run(args) -> int`; this module lists them explicitly (no registry) and imports the heavy
library code only inside `run`, so `transformer --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from transformer.cli import (
    average,
    bench,
    demo,
    evaluate,
    generate,
    plot,
    tokenizer,
    train,
    translate,
)

# The sub-command modules, in the order `--help` shows them.
COMMANDS = [demo, train, average, translate, evaluate, generate, tokenizer, bench, plot]


class UserError(Exception):
    """An error in the user's input: printed as one clear line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transformer",
        description="The Transformer (Vaswani et al., 2017): attention, model, BPE, training, "
        "decoding, evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as err:
        print(f"transformer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
