"""`transformer bench WHAT`: reproducible speed benchmarks (results go to docs/benchmarks.md).

Each benchmark is a module of the top-level `benchmarks` package (next to `src/` in a checkout,
installed with it by `pip install -e .`) with `add_arguments(parser)` and `run(args)`. The
benchmarks are not part of the importable library: they are imported here, only when the
`transformer` command is built, and a missing package is reported with one line.
"""

from __future__ import annotations

import argparse
import importlib

from transformer.cli.errors import UserError

# name -> (module under benchmarks, one-line help)
BENCHES = {
    "attention": ("attention", "the exercise's attention benchmarks + long-sequence table"),
    "decode": ("decode", "greedy/beam sentences/s, cache vs none, vs HF MarianMT generate()"),
    "lm": ("lm", "GPT training tokens/s vs nanoGPT; generation: KV cache, vs HF generate()"),
    "data": ("data", "Multi30k pipeline: encode vs cache, batches/s, bucketed vs fixed padding"),
    "model": ("model", "training step vs nn.Transformer (tokens/s, MFU); --params: Table 3"),
    "tokenizer": ("tokenizer", "BPE learn/encode vs subword-nmt, HF tokenizers, tiktoken"),
    "training": ("training", "Multi30k training tokens/s: trainer + token batches vs plain loop"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="speed benchmarks (see docs/benchmarks.md)")
    which = parser.add_subparsers(dest="bench", metavar="WHAT", required=True)
    for name, (module_name, help_text) in BENCHES.items():
        module = _benchmark(module_name)
        if module is None:
            which.add_parser(name, help=help_text).set_defaults(run=_missing)
            continue
        p = which.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.add_argument(
            "--reference",
            action="store_true",
            help="run the plain reference core, no fast engine",
        )
        p.set_defaults(run=module.run)


def _benchmark(module_name: str):
    """The module `benchmarks.<module_name>`, or None where the `benchmarks` package is absent
    (an install from a wheel, which ships the library only)."""
    try:
        return importlib.import_module(f"benchmarks.{module_name}")
    except ModuleNotFoundError as err:
        if err.name != "benchmarks":
            raise
        return None


def _missing(args: argparse.Namespace) -> int:

    raise UserError(
        "the benchmarks live in the checkout's top-level benchmarks/ package, which this "
        "install lacks: run from a checkout (`pip install -e .` or PYTHONPATH=<checkout>)"
    )
