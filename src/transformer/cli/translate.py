"""`transformer translate RUN_DIR`: translate stdin to stdout, one sentence per line, in order.

Lines are read lazily and translated in batches of at most `--max-tokens` source tokens, so a
pipe streams; when stdin is a terminal every line is answered at once. The run directory
(written by `transformer train`) holds config.toml, tokenizer.json and model.safetensors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


class IdTokenizer:
    """For runs without a tokenizer (the copy task): a line is whitespace-separated token ids
    (specials 0-3: <pad> <s> </s> <unk>); output ids are printed the same way."""

    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        try:
            ids = [int(tok) for tok in text.split()]
        except ValueError:
            raise _user_error(f"this run reads token ids, got the line {text!r}") from None
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise _user_error(f"token ids must be in [0, {self.vocab_size}), got {text!r}")
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(str(i) for i in ids if i not in (self.pad_id, self.bos_id, self.eos_id))


def _weights_path(run_dir: Path, which: str) -> Path:
    from transformer.training import checkpoint as ckpt

    if which == "latest":
        return run_dir / "model.safetensors"
    if which == "best":
        step = ckpt.best_step(run_dir)
        if step is None:
            raise _user_error(f"{run_dir}: no checkpoints/best.json (no validation yet?)")
        return run_dir / "checkpoints" / f"step-{step:08d}" / "model.safetensors"
    return Path(which)


def _user_error(message: str) -> Exception:
    from transformer.cli import UserError

    return UserError(message)


def load_model(args: argparse.Namespace):
    """(model in eval mode on its device, tokenizer, ModelConfig, RunConfig) from RUN_DIR."""
    import torch

    from transformer.config import ConfigError
    from transformer.models import Transformer
    from transformer.tokenizers import TokenizerError, load_tokenizer
    from transformer.training import checkpoint as ckpt
    from transformer.training.config import RunConfig

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.toml").is_file():
        raise _user_error(f"{run_dir / 'config.toml'} not found: is {run_dir} a training run?")
    try:
        run_cfg = RunConfig.from_toml(run_dir / "config.toml")
        if run_cfg.data.task == "copy":  # no tokenizer: lines of token ids
            tokenizer = IdTokenizer(run_cfg.model.src_vocab_size)
            cfg = run_cfg.model
        elif not (run_dir / "tokenizer.json").is_file():
            raise _user_error(f"{run_dir / 'tokenizer.json'} not found")
        else:
            tokenizer = load_tokenizer(run_dir / "tokenizer.json")
            vocab = tokenizer.vocab_size
            cfg = run_cfg.model.replace(src_vocab_size=vocab, tgt_vocab_size=vocab)
    except (ConfigError, TokenizerError) as err:
        raise _user_error(str(err)) from None
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(
            "cuda"
            if args.device == "auto" and torch.cuda.is_available()
            else "cpu"
            if args.device == "auto"
            else args.device
        )
    except RuntimeError:
        raise _user_error(f"--device: unknown device {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _user_error("--device cuda: no CUDA device is available")
    model = Transformer(cfg)
    try:
        if args.average > 0:
            steps = ckpt.step_dirs(run_dir)[-args.average :]
            if not steps:
                raise _user_error(f"{run_dir}: no checkpoints to average")
            model.load_state_dict(ckpt.average([p / "model.safetensors" for _, p in steps]))
        else:
            ckpt.load_into(model, _weights_path(run_dir, args.weights))
    except ckpt.CheckpointError as err:
        raise _user_error(str(err)) from None
    return model.to(device).eval(), tokenizer, cfg, run_cfg


def build_translator(args: argparse.Namespace, n_best: int = 1):
    """A `Translator` for RUN_DIR with the search options of `args`."""
    from transformer.decoding import SpecialIds
    from transformer.decoding.translator import SearchSettings, Translator
    from transformer.fast import optimize, tune_malloc

    fast = not getattr(args, "reference", False)
    if fast:
        tune_malloc()  # the (rows, V) logits of every step reuse heap pages (about 10% on beam 4)
    model, tokenizer, cfg, run_cfg = load_model(args)
    if fast:
        optimize(model)  # the fast engine: same weights, same results, faster
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
    for i, result in enumerate(results):
        if args.n_best > 1:
            for hyp in result.hypotheses:
                text = translator.decode(hyp.tokens)
                print(f"{i} ||| {text} ||| {hyp.score:.4f}")
        else:
            print(result.text)
        sys.stdout.flush()
    return 0
