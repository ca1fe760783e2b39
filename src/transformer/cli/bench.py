"""`transformer bench WHAT`: reproducible speed benchmarks (results go to docs/benchmarks.md).

Each benchmark is a module of `transformer.bench` with `add_arguments(parser)` and `run(args)`.
"""

from __future__ import annotations

import argparse
import importlib

# name -> (module under transformer.bench, one-line help)
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
        module = importlib.import_module(f"transformer.bench.{module_name}")
        p = which.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.add_argument(
            "--reference",
            action="store_true",
            help="run the plain reference core, no fast engine",
        )
        p.set_defaults(run=module.run)
