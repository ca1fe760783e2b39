"""`transformer fill-mask RUN_DIR "A man in an orange hat [MASK] at something."`: the top-k
candidates for each [MASK] of a sentence with their probabilities, from a masked-LM run
(data.task = "mlm"; `transformer.decoding.fill_mask`).

    transformer fill-mask runs/bert "A man [MASK] a horse." --top-k 5
    echo "Two [MASK] play in the [MASK]." | transformer fill-mask runs/bert --json

Without TEXT every line of stdin is one sentence. A sentence without [MASK], or longer than
the model's positions once [CLS] and [SEP] are added, is a one-line error.
"""

from __future__ import annotations

import argparse
import json
import sys

from transformer.cli.errors import UserError
from transformer.cli.translate import open_run
from transformer.decoding.fill_mask import fill_mask
from transformer.rundir import RunOpenError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fill-mask", help="fill in the [MASK]s of a sentence with a trained BERT",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a masked-LM training run")
    parser.add_argument("text", nargs="?", help="the sentence, with [MASK] (default: stdin)")
    parser.add_argument("--top-k", type=int, default=5, help="candidates per mask (default 5)")
    parser.add_argument("--weights", default="latest", help="'latest', 'best' or a file")
    parser.add_argument("--average", type=int, default=0, metavar="N",
                        help="average the last N checkpoints instead")  # fmt: skip
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", action="store_true", help="one JSON object per sentence")
    parser.set_defaults(run=run)


def _error(message: str) -> Exception:

    return UserError(message)


def _sentences(args: argparse.Namespace) -> list[str]:
    if args.text is not None:
        return [args.text]
    if sys.stdin.isatty():
        raise _error('no sentence: give TEXT ("A man [MASK] a horse.") or pipe lines on stdin')
    lines = [line.strip() for line in sys.stdin if line.strip()]
    if not lines:
        raise _error("no sentence on stdin")
    return lines


def _filled(tokenizer, text: str, best: list[str]) -> str:
    """The sentence with each [MASK] replaced by its top candidate (decoded as pieces)."""
    ids = tokenizer.encode(text)
    picks = iter(best)
    ids = [tokenizer.vocab[next(picks)] if i == tokenizer.mask_id else i for i in ids]
    return tokenizer.decode(ids)


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise _error(f"--top-k must be >= 1, got {args.top_k}")
    run_dir, device = open_run(args)
    if not run_dir.is_mlm:
        raise _error(
            f"{args.run_dir} is a data.task {run_dir.config.data.task!r} run; fill-mask "
            "needs a masked-LM run (data.task 'mlm')"
        )
    try:
        model = run_dir.load_model(args.weights, args.average, device)
    except RunOpenError as err:
        raise _error(str(err)) from None
    tokenizer = run_dir.tokenizer
    for text in _sentences(args):
        try:
            masks = fill_mask(model, tokenizer, text, top_k=args.top_k)
        except ValueError as err:
            raise _error(f"{text!r}: {err}") from None
        filled = _filled(tokenizer, text, [m[0][0] for m in masks])
        if args.json:
            rows = [[{"token": t, "probability": p} for t, p in m] for m in masks]
            print(json.dumps({"text": text, "filled": filled, "masks": rows}))
            continue
        print(text)
        for n, candidates in enumerate(masks, 1):
            shown = "  ".join(f"{t} {p:.3f}" for t, p in candidates)
            print(f"  [MASK] {n}: {shown}")
        print(f"  -> {filled}")
    return 0
