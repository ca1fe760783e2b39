"""`transformer translate RUN_DIR`: translate stdin to stdout, one sentence per line, in order.

Lines are read lazily and translated in batches of at most `--max-tokens` source tokens, so a
pipe streams; when stdin is a terminal every line is answered at once. The run directory
(written by `transformer train`) holds config.toml, tokenizer.json and model.safetensors.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import NamedTuple

import torch
from torch import nn

from transformer.cli.errors import UserError
from transformer.decoding import SpecialIds
from transformer.decoding.translator import SearchSettings, Translator
from transformer.fast import optimize, tune_malloc
from transformer.rundir import DecodingChoice, RunDir, RunOpenError, resolve_device


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `translate` and `evaluate`: the run, the weights, the search. Each of
    --weights/--average, --beam, --alpha and --exact-stop left out comes from RUN_DIR's
    decoding.json (`evaluate --split val --choose`), else the paper's beam 4, alpha 0.6 on
    the latest weights; the output says which settings were used and where they came from."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a training run directory")
    parser.add_argument(
        "--weights",
        default=None,
        help="'latest' (RUN_DIR/model.safetensors), 'best' (the best "
        "validation checkpoint) or a .safetensors file",
    )
    parser.add_argument(
        "--average",
        type=int,
        default=None,
        metavar="N",
        help="average the weights of the last N checkpoints instead",
    )
    parser.add_argument("--beam", type=int, default=None, help="beam size; 1 = greedy")
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="length penalty ((5+|Y|)/6)^alpha, Wu et al. 2016",
    )
    parser.add_argument(
        "--exact-stop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="beam search: stop a sentence only when no live beam could still win at any "
        "length up to the limit (slower; the other rule stops when none wins at its current "
        "length, as Hugging Face generate does, which favours short outputs at large alpha)",
    )
    parser.add_argument(
        "--max-len-offset",
        type=int,
        default=50,
        help="at most source length + this many output tokens (default 50)",
    )
    parser.add_argument(
        "--max-tokens", type=int, default=4000, help="source tokens per batch (default 4000)"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute every prefix (slow; for checking the KV cache)",
    )
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="run the plain reference core, no fast engine",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "translate", help="translate stdin to stdout with a trained model", description=__doc__
    )
    add_search_arguments(parser)
    parser.add_argument(
        "--n-best",
        type=int,
        default=1,
        help="print the N best hypotheses as 'i ||| text ||| score' lines",
    )
    parser.set_defaults(run=run)


def _user_error(message: str) -> Exception:

    return UserError(message)


def open_run(args: argparse.Namespace):
    """(RunDir, device) from RUN_DIR and --device / --threads."""

    try:
        run_dir = RunDir.open(args.run_dir)
        if args.threads:
            torch.set_num_threads(args.threads)
        return run_dir, resolve_device(args.device)
    except RunOpenError as err:
        raise _user_error(str(err)) from None


_FLAGS = (("beam", "--beam"), ("alpha", "--alpha"), ("exact_stop", "--exact-stop"))


def resolve_choice(args: argparse.Namespace, run_dir) -> tuple[object, dict[str, str]]:
    """The decoding settings (a `DecodingChoice`) and where each came from: a flag given,
    else RUN_DIR/decoding.json, else the defaults. --weights/--average go together."""

    try:
        recorded = run_dir.recorded_decoding()
    except RunOpenError as err:
        raise _user_error(str(err)) from None
    base = recorded[0] if recorded else DecodingChoice()
    fallback = "default"
    if recorded:
        on = recorded[1].get("test_set")
        fallback = f"{run_dir.decoding_path}" + (f", chosen on {on}" if on else "")
    values, origin = {}, {}
    for name, flag in _FLAGS:
        if getattr(args, name) is not None:
            values[name], origin[name] = getattr(args, name), flag
    if args.weights is not None or args.average is not None:
        values["weights"], values["average"] = args.weights or "latest", args.average or 0
        origin["weights"] = "--weights" if args.average is None else "--average"
    try:
        choice = dataclasses.replace(base, **values)
    except ValueError as err:
        raise _user_error(str(err)) from None
    names = [name for name, _ in _FLAGS] + ["weights"]
    return choice, {name: origin.get(name, fallback) for name in names}


def describe_origin(choice, origin: dict[str, str], run_dir) -> str:
    """'beam 6, alpha 1.4, exact stop, average of the last 5 checkpoints (beam: --beam;
    alpha, stop rule, weights: runs/x/decoding.json)', with a note when the recorded
    averaged checkpoints are no longer the last ones."""
    labels = {"exact_stop": "stop rule"}
    groups: dict[str, list[str]] = {}
    for name, source in origin.items():
        groups.setdefault(source, []).append(labels.get(name, name))
    sources = "; ".join(f"{', '.join(names)}: {src}" for src, names in groups.items())
    line = f"{choice.describe()} ({sources})"
    from_file = origin["weights"].startswith(str(run_dir.decoding_path))
    recorded = run_dir.recorded_decoding() if from_file else None
    if recorded and choice.average > 1:
        then, now = recorded[1].get("checkpoint_steps", []), run_dir.checkpoint_steps()
        if then[-choice.average :] != now[-choice.average :]:
            line += (
                f"; note: chosen on checkpoints up to step {then[-1] if then else '?'}, the run "
                f"now ends at step {now[-1] if now else '?'}: choose again (--choose)"
            )
    return line


def load_weights(run_dir, choice, device, fast: bool = True):
    """The model of `choice`'s weights, in eval mode, sped up by the fast engine unless
    `fast` is False (`--reference`)."""

    try:
        model = run_dir.load_choice(choice, device)
    except RunOpenError as err:
        raise _user_error(str(err)) from None
    if fast:
        tune_malloc()  # the (rows, V) logits of every step reuse heap pages (about 10% on beam 4)
        optimize(model)  # the fast engine: same weights, same results, faster
    return model


def make_translator(model, run_dir, choice, args: argparse.Namespace, n_best: int = 1):
    """A `Translator` for `model` with `choice`'s search and the other options of `args`."""

    try:
        settings = SearchSettings(
            beam=choice.beam,
            alpha=choice.alpha,
            n_best=n_best,
            max_len_offset=args.max_len_offset,
            use_cache=not args.no_cache,
            exact=choice.exact_stop,
        )
    except ValueError as err:
        raise _user_error(str(err)) from None
    tokenizer, cfg = run_dir.tokenizer, run_dir.model_config
    ids = SpecialIds(bos=tokenizer.bos_id, eos=tokenizer.eos_id, pad=cfg.pad_id)
    device = next(model.parameters()).device
    return Translator(
        model,
        tokenizer.encode,
        tokenizer.decode,
        ids,
        settings,
        max_positions=cfg.max_len,
        device=device,
    )


class BuiltTranslator(NamedTuple):
    """What `build_translator` sets up for RUN_DIR."""

    translator: Translator
    model: nn.Module
    run_dir: RunDir
    choice: DecodingChoice
    origin: str  # which settings came from flags, decoding.json or the defaults


def build_translator(args: argparse.Namespace, n_best: int = 1) -> BuiltTranslator:
    """The translator of RUN_DIR with the search options of `args` (see `BuiltTranslator`)."""
    run_dir, device = open_run(args)
    if run_dir.is_lm or run_dir.is_mlm:
        what, use = (
            ("a language", "generate") if run_dir.is_lm else ("a masked language", "fill-mask")
        )
        raise _user_error(f"{args.run_dir} holds {what} model: use `transformer {use}`")
    choice, origin = resolve_choice(args, run_dir)
    model = load_weights(run_dir, choice, device, fast=not args.reference)
    translator = make_translator(model, run_dir, choice, args, n_best)
    return BuiltTranslator(
        translator, model, run_dir, choice, describe_origin(choice, origin, run_dir)
    )


def _lines(stream, interactive: bool):
    """stdin lines; on a terminal, with a prompt on stderr."""
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = stream.readline()
        if not line:
            return
        yield line


def run(args: argparse.Namespace) -> int:
    if args.max_tokens < 1:
        raise _user_error(f"--max-tokens must be >= 1, got {args.max_tokens}")
    built = build_translator(args, n_best=args.n_best)
    translator, origin = built.translator, built.origin
    print(f"transformer translate: {origin}", file=sys.stderr)
    interactive = sys.stdin.isatty()
    lines = _lines(sys.stdin, interactive)
    results = translator.stream(
        lines, max_tokens=args.max_tokens, max_sentences=1 if interactive else 128
    )

    try:
        for i, result in enumerate(results):
            if args.n_best > 1:
                for hyp in result.hypotheses:
                    text = translator.decode(hyp.tokens)
                    print(f"{i} ||| {text} ||| {hyp.score:.4f}")
            else:
                print(result.text)
            sys.stdout.flush()
    except RunOpenError as err:  # a line the run's tokenizer cannot read
        raise _user_error(str(err)) from None
    return 0
