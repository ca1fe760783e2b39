"""The `transformer` command: a thin layer that parses arguments and calls the library.

Each sub-command lives in its own module with two functions, `add_parser(subparsers)` and
`run(args) -> int`; this module lists them explicitly (no registry). Every module imports
what it uses at the top; only the optional web stack (fastapi, uvicorn) is imported by
`serve` when it runs, so the command works without the `serve` extra.

`main` is the one place where errors meet the user: an expected failure (bad input, a file
that cannot be read or written, a full disk, a closed output pipe, a damaged checkpoint)
prints one line `transformer COMMAND: error: ...` naming the file or field and exits non-zero
(2 for usage and input errors, 1 for failures of the machine or the run, 130 on Ctrl-C, 141
on a closed pipe); `--debug` or `TRANSFORMER_DEBUG=1` also prints the traceback. Anything
else is a bug and keeps its traceback. `--offline` (or `TRANSFORMER_OFFLINE=1`) forbids
downloads.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from transformer.cli import (
    average,
    bench,
    convert,
    demo,
    evaluate,
    fill_mask,
    generate,
    plot,
    serve,
    tokenizer,
    train,
    translate,
)
from transformer.cli.errors import UserError, check_output  # noqa: F401  (re-exported)

# The sub-command modules, in the order `--help` shows them.
COMMANDS = [
    demo,
    train,
    average,
    translate,
    evaluate,
    generate,
    fill_mask,
    tokenizer,
    bench,
    plot,
    convert,
    serve,
]

# Library errors that describe bad input (exit 2), by module and class (looked up only once
# raised, so that `transformer --help` imports no library code).
INPUT_ERRORS = [
    ("transformer.config", "ConfigError"),
    ("transformer.data.corpus", "DataError"),
    ("transformer.tokenizers.files", "TokenizerError"),
    ("transformer.training.checkpoint", "CheckpointError"),
    ("transformer.training.trainer", "RunDirError"),
]
# OSErrors that mean the user named a path that does not fit (exit 2); other ones exit 1.
PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
               FileExistsError)  # fmt: skip


def _add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """--debug / --offline on the command and on every sub-command (before or after it)."""
    default = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of an error (also TRANSFORMER_DEBUG=1)",
        **default,
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never download a corpus (also TRANSFORMER_OFFLINE=1)",
        **default,
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_global_options(child, top=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transformer",
        description="The Transformer (Vaswani et al., 2017): attention, model, BPE, training, "
        "decoding, evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    _add_global_options(parser, top=True)
    return parser


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _is(err: BaseException, module: str, name: str) -> bool:
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(err, cls)


def describe(err: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit status) of an expected failure; None for a bug."""
    if isinstance(err, UserError) or any(_is(err, m, n) for m, n in INPUT_ERRORS):
        return str(err), 2
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(err, BrokenPipeError):
        return "the output pipe was closed (broken pipe); output stopped", 141
    if _is(err, "transformer.training.trainer", "TrainingError"):
        return f"stopped: {err}", 1
    if _is(err, "torch", "OutOfMemoryError") or isinstance(err, MemoryError):
        return f"out of memory ({str(err).splitlines()[0] if str(err) else 'MemoryError'})", 1
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        if err.filename2:
            where = f"{err.filename} -> {err.filename2}: "
        return f"{where}{err.strerror or err}", 2 if isinstance(err, PATH_ERRORS) else 1
    return None


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or _flag("TRANSFORMER_DEBUG")
    if args.offline:
        os.environ["TRANSFORMER_OFFLINE"] = "1"
    try:
        return int(args.run(args) or 0)
    except (Exception, KeyboardInterrupt) as err:
        known = describe(err)
        if known is None:
            raise
        if isinstance(err, BrokenPipeError):
            _silence_stdout()
        if debug:
            traceback.print_exc()
        message, status = known
        print(f"transformer {args.command}: error: {message}", file=sys.stderr)
        return status
