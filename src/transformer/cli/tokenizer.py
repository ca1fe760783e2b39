"""`transformer tokenizer train|encode|decode`: subword tokenizers on files or stdin.

    transformer tokenizer train --merges 8000 -o bpe.json train.en.gz train.de.gz
    transformer tokenizer train --split-punct -o bpe-punct.json train.en.gz train.de.gz
    transformer tokenizer train --kind bytebpe --vocab-size 8000 -o bytes.json input.txt
    transformer tokenizer train --kind char -o chars.json input.txt   # one token a character
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

from transformer.cli.errors import UserError, check_output
from transformer.cli.wordpiece import (
    add_wordpiece_arguments,
    encode_wordpiece,
    train_wordpiece,
)
from transformer.data.corpus import DataError, read_text
from transformer.tokenizers import (
    BPE,
    ByteBPE,
    CharTokenizer,
    TokenizerError,
    WordPiece,
    load_tokenizer,
)


def _error(message: str) -> Exception:
    """A `transformer.cli.errors.UserError` with `message`."""

    return UserError(message)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("tokenizer", help="train / apply BPE tokenizers (classic, GPT-2 bytes)")
    which = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    train = which.add_parser("train", help="learn a tokenizer from text files (or stdin)")
    train.add_argument("files", nargs="*", help="text files (.gz ok); none or '-': stdin")
    train.add_argument("-o", "--out", required=True, help="tokenizer JSON file to write")
    train.add_argument(
        "--kind",
        choices=["bpe", "bytebpe", "wordpiece", "char"],
        default="bpe",
        help="default: bpe",
    )
    train.add_argument("--merges", type=int, help="number of merges (bpe; default 8000)")
    train.add_argument(
        "--vocab-size", type=int, help="vocabulary size (bytebpe, wordpiece; default 8000)"
    )
    add_wordpiece_arguments(train)
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
        lineno = 0
        try:
            for lineno, line in enumerate(f, start=1):
                yield ("<stdin>" if name == "-" else name), lineno, line
        except UnicodeDecodeError as err:
            raise _error(_utf8_error(name, lineno, err)) from None
        except (OSError, EOFError) as err:
            raise _error(f"{name}: cannot read ({err})") from None
        finally:
            if f is not sys.stdin:
                f.close()


def _utf8_error(name: str, lines_read: int, err: UnicodeDecodeError) -> str:
    """'FILE:LINE: invalid UTF-8 ...' (the exact line: the file is read again as bytes)."""
    if name != "-":
        try:
            read_text(name)
        except DataError as exact:
            return str(exact)
    return f"<stdin>: invalid UTF-8 after line {lines_read} ({err.reason})"


def run(args: argparse.Namespace) -> int:

    try:
        if args.action == "train":
            return _train(args)
        if args.action == "encode":
            return _encode(args)
        return _decode(args)
    except TokenizerError as err:
        if args.action == "train" and "empty" in str(err):  # name the input
            raise _error(f"{', '.join(args.files) or '<stdin>'}: {err}") from None
        raise _error(str(err)) from err


def _train(args: argparse.Namespace) -> int:

    for option, path in (("-o", args.out), ("--codes", args.codes), ("--hf-json", args.hf_json)):
        check_output(option, path)  # before the learning, not after

    lines = (line for _, _, line in read_lines(args.files))
    progress = not args.quiet
    if args.kind == "wordpiece":
        return train_wordpiece(args, lines)
    if args.kind == "char":
        given = (args.merges, args.vocab_size, args.codes, args.hf_json)
        if any(x is not None for x in given) or args.no_end_of_word or args.split_punct:
            raise _error("--kind char takes no merges, vocabulary size or BPE options")
        tok = CharTokenizer.train(lines)  # every character of the text, newlines included
        tok.save(args.out)
        print(f"wrote {args.out}: vocabulary {tok.vocab_size} characters", file=sys.stderr)
        return 0
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

    tok = load_tokenizer(args.tokenizer)
    if isinstance(tok, WordPiece):
        return encode_wordpiece(args, tok, read_lines(args.files))
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
        elif isinstance(tok, CharTokenizer):
            ids = tok.encode(text)
        else:
            ids = tok.encode(text, allowed_special="all" if args.allow_special else ())
        items = ids if args.format == "ids" else [tok.tokens[i] for i in ids]
        out.write(" ".join(map(str, items)) + "\n")
    return 0


def _decode(args: argparse.Namespace) -> int:

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
