"""`transformer tokenizer train|encode|decode`: subword tokenizers on files or stdin.

    transformer tokenizer train --merges 8000 -o bpe.json train.en.gz train.de.gz
    transformer tokenizer train --split-punct -o bpe-punct.json train.en.gz train.de.gz
    transformer tokenizer train --kind bytebpe --vocab-size 8000 -o bytes.json input.txt
    transformer tokenizer encode -t bpe.json --format subword-nmt < text   # "sub@@ word" lines
    transformer tokenizer encode -t bpe.json < text | transformer tokenizer decode -t bpe.json

Files may be gzip-compressed (`.gz`); no file (or `-`) means standard input. Encoding writes
one output line per input line.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterator


def _error(message: str) -> Exception:
    """A `transformer.cli.UserError` (imported late: `transformer.cli` imports this module)."""
    from transformer.cli import UserError

    return UserError(message)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("tokenizer", help="train / apply BPE tokenizers (classic, GPT-2 bytes)")
    which = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    train = which.add_parser("train", help="learn a tokenizer from text files (or stdin)")
    train.add_argument("files", nargs="*", help="text files (.gz ok); none or '-': stdin")
    train.add_argument("-o", "--out", required=True, help="tokenizer JSON file to write")
    train.add_argument("--kind", choices=["bpe", "bytebpe"], default="bpe", help="default: bpe")
    train.add_argument("--merges", type=int, help="number of merges (bpe; default 8000)")
    train.add_argument("--vocab-size", type=int, help="vocabulary size (bytebpe; default 8000)")
    train.add_argument("--min-frequency", type=int, default=2, help="default: 2")
    train.add_argument(
        "--no-end-of-word", action="store_true", help="bpe: no '</w>' marker on word ends"
    )
    train.add_argument(
        "--split-punct",
        action="store_true",
        help="bpe: split punctuation off words first, reversibly ('T-Shirt.' -> 'T ￭-￭ Shirt ￭.')",
    )
    train.add_argument("--hf-json", help="also write a Hugging Face tokenizer.json here")
    train.add_argument("--codes", help="bpe: also write a subword-nmt codes file here")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=run)

    encode = which.add_parser("encode", help="text lines -> ids / tokens / 'sub@@ word'")
    encode.add_argument("files", nargs="*", help="text files (.gz ok); none or '-': stdin")
    encode.add_argument("-t", "--tokenizer", required=True, help="tokenizer JSON file")
    encode.add_argument(
        "--format", choices=["ids", "tokens", "subword-nmt"], default="ids", help="default: ids"
    )
    encode.add_argument("--add-bos", action="store_true", help="bpe: start each line with <s>")
    encode.add_argument("--add-eos", action="store_true", help="bpe: end each line with </s>")
    encode.add_argument(
        "--allow-special", action="store_true", help="bytebpe: special-token text -> its id"
    )
    encode.set_defaults(run=run)

    decode = which.add_parser("decode", help="lines of space-separated ids -> text lines")
    decode.add_argument("files", nargs="*", help="id files (.gz ok); none or '-': stdin")
    decode.add_argument("-t", "--tokenizer", required=True, help="tokenizer JSON file")
    decode.set_defaults(run=run)


def read_lines(files: list[str]) -> Iterator[tuple[str, int, str]]:
    """(file name, line number, line) for every line of `files` (stdin when empty or '-')."""
    for name in files or ["-"]:
        try:
            if name == "-":
                f = sys.stdin
            elif name.endswith(".gz"):
                f = gzip.open(name, "rt", encoding="utf-8")  # noqa: SIM115 (closed below)
            else:
                f = open(name, encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError as err:
            raise _error(f"{name}: cannot open ({err.strerror})") from err
        try:
            for lineno, line in enumerate(f, start=1):
                yield ("<stdin>" if name == "-" else name), lineno, line
        except (UnicodeDecodeError, OSError, EOFError) as err:
            raise _error(f"{name}: cannot read as UTF-8 text ({err})") from err
        finally:
            if f is not sys.stdin:
                f.close()


def run(args: argparse.Namespace) -> int:
    from transformer.tokenizers import TokenizerError

    try:
        if args.action == "train":
            return _train(args)
        if args.action == "encode":
            return _encode(args)
        return _decode(args)
    except TokenizerError as err:
        raise _error(str(err)) from err


def _train(args: argparse.Namespace) -> int:
    from transformer.tokenizers import BPE, ByteBPE

    lines = (line for _, _, line in read_lines(args.files))
    progress = not args.quiet
    if args.kind == "bpe":
        if args.vocab_size is not None:
            raise _error("--vocab-size is for --kind bytebpe; use --merges for bpe")
        eow = None if args.no_end_of_word else "</w>"
        num_merges = 8000 if args.merges is None else args.merges
        tok = BPE.train(
            lines,
            num_merges,
            eow,
            args.min_frequency,
            progress=progress,
            split_punct=args.split_punct,
        )
        if args.codes:
            tok.write_codes(args.codes)
    else:
        if args.merges is not None or args.codes or args.no_end_of_word or args.split_punct:
            raise _error("--merges/--codes/--no-end-of-word/--split-punct are for --kind bpe")
        vocab_size = 8000 if args.vocab_size is None else args.vocab_size
        tok = ByteBPE.train(lines, vocab_size, min_frequency=args.min_frequency, progress=progress)
    tok.save(args.out)
    if args.hf_json:
        tok.to_hf_json(args.hf_json)
    print(
        f"wrote {args.out}: {len(tok.merges)} merges, vocabulary {tok.vocab_size}", file=sys.stderr
    )
    return 0


def _encode(args: argparse.Namespace) -> int:
    from transformer.tokenizers import BPE, load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    is_bpe = isinstance(tok, BPE)
    if not is_bpe and (args.add_bos or args.add_eos or args.format == "subword-nmt"):
        raise _error("--add-bos/--add-eos/--format subword-nmt need a classic BPE tokenizer")
    if is_bpe and args.allow_special:
        raise _error("--allow-special is for byte-level (bytebpe) tokenizers")
    out = sys.stdout
    for _, _, line in read_lines(args.files):
        text = line.rstrip("\n")
        if args.format == "subword-nmt":
            out.write(tok.segment(line) if line.endswith("\n") else tok.segment(line) + "\n")
            continue
        if is_bpe:
            ids = tok.encode(text, add_bos=args.add_bos, add_eos=args.add_eos)
        else:
            ids = tok.encode(text, allowed_special="all" if args.allow_special else ())
        items = ids if args.format == "ids" else [tok.tokens[i] for i in ids]
        out.write(" ".join(map(str, items)) + "\n")
    return 0


def _decode(args: argparse.Namespace) -> int:
    from transformer.tokenizers import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    for name, lineno, line in read_lines(args.files):
        try:
            ids = [int(x) for x in line.split()]
        except ValueError as err:
            raise _error(f"{name}:{lineno}: expected space-separated integer ids") from err
        bad = [i for i in ids if not 0 <= i < tok.vocab_size]
        if bad:
            raise _error(f"{name}:{lineno}: id {bad[0]} is outside [0, {tok.vocab_size})")
        sys.stdout.write(tok.decode(ids) + "\n")
    return 0
