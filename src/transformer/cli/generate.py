"""`transformer generate RUN_DIR --prompt "ROMEO:"`: sample text from a GPT run, printed as it
is generated.

    transformer generate runs/shakespeare --prompt "ROMEO:" --max-new-tokens 500 \\
        --temperature 0.8 --top-k 50 --top-p 0.95 --seed 1 [--num-samples N]
    echo "JULIET:" | transformer generate runs/shakespeare --seed 1

The prompt comes from --prompt or else stdin. Temperature 0 is greedy (argmax); top-k keeps
the k most probable tokens (0: all), top-p the smallest set whose probability reaches p
(1: all). The same --seed gives the same text. A KV cache holds the context; past the model's
context (data.block_size) the model sees a sliding window of the last tokens, moved
--window-slide positions at a time (default a quarter of the context; 1 = nanoGPT's crop at
every step), re-encoded into a fresh cache each time it moves. --num-samples N draws N
samples in one batch: one is streamed; N > 1 are printed when all are done.
"""

from __future__ import annotations

import argparse
import sys

import torch

from transformer.cli.errors import UserError
from transformer.cli.translate import open_run
from transformer.decoding.sampling import check_sampling, stream
from transformer.fast import optimize
from transformer.rundir import RunOpenError
from transformer.tokenizers import TokenizerError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "generate", help="sample text from a trained GPT language model", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a language-model training run")
    parser.add_argument("--prompt", help="the text to continue (default: read stdin)")
    parser.add_argument("--max-new-tokens", type=int, default=500, help="default 500")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; default 0.8")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k most probable; 0 = all")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in (0, 1]; 1 = all")
    parser.add_argument("--seed", type=int, default=None, help="seed of the sampler")
    parser.add_argument("--num-samples", type=int, default=1, help="samples in one batch")
    parser.add_argument(
        "--window-slide", type=int, default=None, metavar="N",
        help="past the context, move the window N positions at a time (default context // 4)",
    )  # fmt: skip
    parser.add_argument("--no-cache", action="store_true", help="recompute the window each step")
    parser.add_argument("--weights", default="latest", help="'latest', 'best' or a file")
    parser.add_argument("--average", type=int, default=0, metavar="N",
                        help="average the last N checkpoints instead")  # fmt: skip
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.add_argument(
        "--reference", action="store_true", help="run the plain reference core, no fast engine"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.set_defaults(run=run)


def _error(message: str) -> Exception:

    return UserError(message)


def _prompt_text(args: argparse.Namespace) -> str:
    if args.prompt is not None:
        text = args.prompt
    elif sys.stdin.isatty():
        raise _error("no prompt: give --prompt TEXT or pipe the prompt on stdin")
    else:
        text = sys.stdin.read()
    if not text:
        raise _error("empty prompt: give --prompt TEXT (at least one character) or pipe it")
    return text


def _check_args(args: argparse.Namespace) -> dict:
    """The sampling settings for `transformer.decoding.sampling.stream`, checked."""

    if args.max_new_tokens < 0:
        raise _error(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if args.num_samples < 1:
        raise _error(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.top_k < 0:
        raise _error(f"--top-k must be >= 0 (0 = all tokens), got {args.top_k}")
    settings = dict(
        temperature=args.temperature,
        top_k=args.top_k or None,
        top_p=None if args.top_p == 1.0 else args.top_p,
    )
    try:
        check_sampling(**settings)
    except ValueError as err:
        raise _error(f"--{str(err).replace('_', '-')}") from None
    return settings


def _open_lm(args: argparse.Namespace):
    """(model, tokenizer, context) of an LM run directory, or a UserError."""
    run_dir, device = open_run(args)
    if not run_dir.is_lm:
        raise _error(
            f"{args.run_dir} holds a translation model (data.task = "
            f"{run_dir.config.data.task!r}); generate needs a language-model run "
            "(data.task = 'lm'); use `transformer translate` for this one"
        )
    try:
        model = run_dir.load_model(args.weights, args.average, device)
    except RunOpenError as err:
        raise _error(str(err)) from None
    if not args.reference:
        optimize(model)  # the fast engine: same weights, same tokens, faster
    context = min(run_dir.model_config.max_len, run_dir.config.data.block_size)
    return model, run_dir.tokenizer, context


def _encode(tokenizer, text: str) -> list[int]:

    try:
        ids = tokenizer.encode(text)
    except TokenizerError as err:
        raise _error(f"prompt: {err}") from None
    if not ids:
        raise _error("the prompt encodes to no tokens")
    return ids


def _stream_text(tokenizer, tokens, out) -> None:
    """Print the decoded tokens as they come; a byte-level token that ends inside a UTF-8
    character waits for the next ones (up to 8 tokens)."""
    pending: list[int] = []
    for token in tokens:
        pending.append(int(token[0]))
        text = tokenizer.decode(pending)
        if not text.endswith("\ufffd") or len(pending) >= 8:
            out.write(text)
            out.flush()
            pending = []
    if pending:
        out.write(tokenizer.decode(pending))


def run(args: argparse.Namespace) -> int:

    settings = _check_args(args)
    text = _prompt_text(args)
    model, tokenizer, context = _open_lm(args)
    if args.window_slide is not None and not 1 <= args.window_slide <= context:
        raise _error(f"--window-slide must be in [1, {context}] (the context), got "
                     f"{args.window_slide}")  # fmt: skip
    ids = _encode(tokenizer, text)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(args.seed) if args.seed is not None else generator.seed()
    prompt = torch.tensor([ids] * args.num_samples, dtype=torch.long, device=device)
    tokens = stream(
        model, prompt, args.max_new_tokens, max_positions=context,
        window_slide=args.window_slide, use_cache=not args.no_cache,
        generator=generator, **settings,
    )  # fmt: skip
    out = sys.stdout
    if args.num_samples == 1:
        out.write(text)
        _stream_text(tokenizer, tokens, out)
        out.write("\n")
        return 0
    steps = list(tokens)
    generated = torch.stack(steps, dim=1).tolist() if steps else [[]] * args.num_samples
    for i, row in enumerate(generated):
        out.write(f"{'-' * 20} sample {i + 1}\n{text}{tokenizer.decode(row)}\n")
    return 0
