"""`transformer tokenizer ... --kind wordpiece`: the WordPiece parts of `cli/tokenizer.py`.

transformer tokenizer train --kind wordpiece --vocab-size 8000 -o wp.json train.en.gz
transformer tokenizer train --kind wordpiece --cased --criterion frequency -o wp.json t.txt
transformer tokenizer encode -t wp.json --add-cls-sep < text
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from transformer.cli.errors import UserError
from transformer.tokenizers import WordPiece


def add_wordpiece_arguments(train: argparse.ArgumentParser) -> None:
    """The `train` options that only `--kind wordpiece` reads."""
    train.add_argument(
        "--criterion",
        choices=["likelihood", "frequency"],
        default="likelihood",
        help="wordpiece: merge by count(ab)/(count(a)count(b)) (default) or by count(ab) "
        "(= HF WordPieceTrainer)",
    )
    train.add_argument("--cased", action="store_true", help="wordpiece: keep case and accents")
    train.add_argument("--vocab-txt", help="wordpiece: also write BERT's vocab.txt here")


def train_wordpiece(args: argparse.Namespace, lines: Iterable[str]) -> int:

    if args.merges is not None or args.codes or args.no_end_of_word or args.split_punct:
        raise UserError("--merges/--codes/--no-end-of-word/--split-punct are for --kind bpe")
    vocab_size = 8000 if args.vocab_size is None else args.vocab_size
    tok = WordPiece.train(
        lines,
        vocab_size,
        lowercase=not args.cased,
        min_frequency=args.min_frequency,
        criterion=args.criterion,
        progress=not args.quiet,
    )
    tok.save(args.out)
    if args.hf_json:
        tok.to_hf_json(args.hf_json)
    if args.vocab_txt:
        tok.write_vocab(args.vocab_txt)
    print(f"wrote {args.out}: WordPiece, vocabulary {tok.vocab_size}", file=sys.stderr)
    return 0


def encode_wordpiece(args: argparse.Namespace, tok, lines: Iterable[tuple]) -> int:
    """One output line per input line: ids or tokens; --add-bos/--add-eos mean [CLS]/[SEP]."""

    if args.format == "subword-nmt" or args.allow_special or args.add_bos != args.add_eos:
        raise UserError(
            "wordpiece: --format subword-nmt/--allow-special do not apply; "
            "--add-bos --add-eos together add [CLS] ... [SEP]"
        )
    for _, _, line in lines:
        ids = tok.encode(line.rstrip("\n"), add_special_tokens=args.add_bos)
        items = ids if args.format == "ids" else [tok.tokens[i] for i in ids]
        sys.stdout.write(" ".join(map(str, items)) + "\n")
    return 0
