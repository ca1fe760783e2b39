"""`transformer translate RUN_DIR`: translate stdin to stdout, one sentence per line, in order.

Lines are read lazily and translated in batches of at most `--max-tokens` source tokens, so a
pipe streams; when stdin is a terminal every line is answered at once. The run directory
(written by `transformer train`) holds config.toml, tokenizer.json and model.safetensors.
"""

from __future__ import annotations

import argparse
import sys


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `translate` and `evaluate`: the run, the weights, the search."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a training run directory")
    parser.add_argument(
        "--weights",
        default="latest",
        help="'latest' (RUN_DIR/model.safetensors), 'best' (the best "
        "validation checkpoint) or a .safetensors file",
    )
    parser.add_argument(
        "--average",
        type=int,
        default=0,
        metavar="N",
        help="average the weights of the last N checkpoints instead",
    )
    parser.add_argument("--beam", type=int, default=4, help="beam size; 1 = greedy (default 4)")
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.6,
        help="length penalty ((5+|Y|)/6)^alpha, Wu et al. 2016 (default 0.6)",
    )
    parser.add_argument(
        "--exact-stop",
        action="store_true",
        help="beam search: stop a sentence only when no live beam could still win at any "
        "length up to the limit (slower; the default stops when none wins at its current "
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
    from transformer.cli import UserError

    return UserError(message)


def load_model(args: argparse.Namespace):
    """(model in eval mode on its device, tokenizer, ModelConfig, RunConfig) from RUN_DIR."""
    import torch

    from transformer.rundir import RunDir, RunOpenError, resolve_device

    try:
        run_dir = RunDir.open(args.run_dir)
        if args.threads:
            torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        model = run_dir.load_model(args.weights, args.average, device)
    except RunOpenError as err:
        raise _user_error(str(err)) from None
    return model, run_dir.tokenizer, run_dir.model_config, run_dir.config


def build_translator(args: argparse.Namespace, n_best: int = 1):
    """A `Translator` for RUN_DIR with the search options of `args`."""
    from transformer.decoding import SpecialIds
    from transformer.decoding.translator import SearchSettings, Translator
    from transformer.layers.packed import pack_for_inference
    from transformer.runtime import tune_malloc

    tune_malloc()  # the (rows, V) logits of every step reuse heap pages (about 10% on beam 4)
    model, tokenizer, cfg, run_cfg = load_model(args)
    if run_cfg.data.task == "lm":
        raise _user_error(f"{args.run_dir} holds a language model: use `transformer generate`")
    pack_for_inference(model)  # oneDNN-packed weights on the CPU (a no-op elsewhere)
    try:
        settings = SearchSettings(
            beam=args.beam,
            alpha=args.alpha,
            n_best=n_best,
            max_len_offset=args.max_len_offset,
            use_cache=not args.no_cache,
            exact=args.exact_stop,
        )
    except ValueError as err:
        raise _user_error(str(err)) from None
    ids = SpecialIds(bos=tokenizer.bos_id, eos=tokenizer.eos_id, pad=cfg.pad_id)
    device = next(model.parameters()).device
    translator = Translator(
        model,
        tokenizer.encode,
        tokenizer.decode,
        ids,
        settings,
        max_positions=cfg.max_len,
        device=device,
    )
    return translator, model, tokenizer, cfg, run_cfg


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
    translator, *_ = build_translator(args, n_best=args.n_best)
    interactive = sys.stdin.isatty()
    lines = _lines(sys.stdin, interactive)
    results = translator.stream(
        lines, max_tokens=args.max_tokens, max_sentences=1 if interactive else 128
    )
    from transformer.rundir import RunOpenError

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
