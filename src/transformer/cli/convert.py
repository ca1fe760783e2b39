"""`transformer convert bert HF_DIR OUT`: a Hugging Face `BertForMaskedLM` directory (from
`save_pretrained`: config.json, model.safetensors or pytorch_model.bin, vocab.txt) into ours.

OUT gets model.safetensors, bert.json (the ModelConfig and n_segments) and, where HF_DIR has a
vocab.txt, tokenizer.json (our WordPiece; `--cased` for a cased vocabulary). The logits of the
converted model equal the original's (tests: to 1e-5 in float32).
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("convert", help="convert Hugging Face weights into ours (BERT)")
    which = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    bert = which.add_parser("bert", help="BertForMaskedLM save_pretrained dir -> our BERT")
    bert.add_argument("hf_dir", metavar="HF_DIR", help="config.json + weights (+ vocab.txt)")
    bert.add_argument("out", metavar="OUT", help="output directory")
    bert.add_argument("--cased", action="store_true", help="vocab.txt is cased (no lowercasing)")
    bert.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from transformer.cli import UserError
    from transformer.config import ConfigError
    from transformer.models.bert_convert import from_hf, read_hf_dir, save_converted
    from transformer.tokenizers import TokenizerError, WordPiece

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
