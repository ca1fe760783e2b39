"""`transformer evaluate RUN_DIR`: translate a test set and score it.

Prints sacreBLEU (cased, 13a) with its signature, chrF, BLEU on lowercased text (the figure most
Multi30k papers report; see `transformer.evaluation.bleu` for how it differs from Moses-
tokenized multi-bleu.perl), and the perplexity of the references under the model. The test
set is `--src FILE --ref FILE` (plain or .gz) or a Multi30k `--split` (languages from the
run's config unless given). The decoding settings not given as flags come from the run's
decoding.json (see `translate`); the report says which were used and where they came from.
A language-model run (data.task = "lm") is scored on its validation split instead: nats per
token, perplexity, bits per character (`evaluate_lm`); a masked-LM run (data.task = "mlm") by
masked-token accuracy, perplexity and the most-frequent-token baseline (`evaluate_mlm`,
`--masked-val FILE` for the Hugging Face peer's masks).

`--choose` (on a validation set: `--split val`) tries candidate weights, beam sizes, alphas
and stopping rules instead (`transformer.evaluation.choose`: a staged grid, `--beams`,
`--alphas`, `--averages`; flags given fix their setting), prints every candidate's scores and
records the best with all of them in RUN_DIR/decoding.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from transformer import durable
from transformer.cli import evaluate_lm, evaluate_mlm
from transformer.cli.errors import check_output
from transformer.cli.translate import (
    _user_error,
    add_search_arguments,
    build_translator,
    load_weights,
    make_translator,
    open_run,
)
from transformer.data.corpus import DataError, read_lines
from transformer.data.multi30k import multi30k_files
from transformer.decoding import pad_ids
from transformer.evaluation import corpus_perplexity, score_translations
from transformer.evaluation.choose import Grid, bleu_scorer, choose, weight_options
from transformer.rundir import RunOpenError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="BLEU/chrF/perplexity of a trained model on a test set",
        description=__doc__,
    )
    add_search_arguments(parser)
    parser.add_argument("--src", help="source sentences, one per line")
    parser.add_argument("--ref", help="reference translations, one per line")
    parser.add_argument("--split", help="a Multi30k split instead, e.g. test_2016_flickr")
    parser.add_argument("--data-dir", help="directory holding multi30k/ (with --split)")
    parser.add_argument("--src-lang", help="with --split (default: the run's data.src_lang)")
    parser.add_argument("--tgt-lang", help="with --split (default: the run's data.tgt_lang)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N sentences")
    parser.add_argument("--output", help="also write the translations to this file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--masked-val",
        metavar="FILE",
        help="masked-LM run: score the masks of this masked_val.json (scripts/hf_bert_peer.py)",
    )
    parser.add_argument(
        "--mask-seed", type=int, default=None, help="masked-LM run: mask validation with this seed"
    )
    parser.add_argument(
        "--choose",
        action="store_true",
        help="try candidate decoding settings on this validation set and record the best in "
        "RUN_DIR/decoding.json, which translate and evaluate then use",
    )
    parser.add_argument("--beams", default="4,6,8", help="--choose: beam sizes (default 4,6,8)")
    parser.add_argument(
        "--alphas", default="0.6,1.0,1.4,2.0", help="--choose: alphas (default 0.6,1.0,1.4,2.0)"
    )
    parser.add_argument(
        "--averages",
        default="1,3,5",
        help="--choose: numbers of last checkpoints to average, 1 = the latest (default 1,3,5)",
    )
    parser.set_defaults(run=run)


def _test_set(args: argparse.Namespace, run_cfg) -> tuple[list[str], list[str], str]:
    """(sources, references, description) after checking the options."""

    if bool(args.split) == bool(args.src or args.ref):
        raise _user_error("give either --src FILE --ref FILE or --split NAME")
    try:
        if args.split:
            src_lang = args.src_lang or run_cfg.data.src_lang
            tgt_lang = args.tgt_lang or run_cfg.data.tgt_lang
            src_path, ref_path = multi30k_files(
                args.split, src_lang, tgt_lang, data_dir=args.data_dir or None
            )
            name = f"multi30k {args.split} {src_lang}-{tgt_lang}"
        else:
            if not (args.src and args.ref):
                raise _user_error("--src and --ref go together")
            src_path, ref_path = Path(args.src), Path(args.ref)
            name = f"{src_path} -> {ref_path}"
        sources, refs = read_lines(src_path), read_lines(ref_path)
    except DataError as err:
        raise _user_error(str(err)) from None
    if len(sources) != len(refs):
        raise _user_error(
            f"{src_path} has {len(sources)} lines but {ref_path} has "
            f"{len(refs)}: they must be parallel"
        )
    if args.limit > 0:
        sources, refs = sources[: args.limit], refs[: args.limit]
    if not sources:
        raise _user_error(f"{name}: no sentences")
    return sources, refs, name


def _perplexity(model, tokenizer, sources, refs, cfg, device):
    """Reference perplexity, in batches of 64 sentences sorted by length."""

    limit = cfg.max_len
    pairs = [
        (
            tokenizer.encode(s)[:limit] or [tokenizer.eos_id],
            [tokenizer.bos_id, *tokenizer.encode(r)[: limit - 1], tokenizer.eos_id],
        )
        for s, r in zip(sources, refs, strict=True)
    ]
    pairs.sort(key=lambda p: len(p[1]))

    batches = (
        tuple(pad_ids([p[side] for p in pairs[i : i + 64]], cfg.pad_id, device) for side in (0, 1))
        for i in range(0, len(pairs), 64)
    )
    return corpus_perplexity(model, batches, cfg.pad_id)


def run(args: argparse.Namespace) -> int:

    if evaluate_lm.is_lm_run(args.run_dir):  # a GPT run: loss / perplexity / bits per char
        return evaluate_lm.run(args)
    if evaluate_mlm.is_mlm_run(args.run_dir):  # a BERT run: masked accuracy / perplexity
        return evaluate_mlm.run(args)
    if args.masked_val or args.mask_seed is not None:
        raise _user_error("--masked-val and --mask-seed apply to masked-LM runs (data.task mlm)")
    if args.choose:
        return _choose(args)
    check_output("--output", args.output)
    translator, model, run_dir, choice, origin = build_translator(args)
    tokenizer, cfg = run_dir.tokenizer, run_dir.model_config
    sources, refs, name = _test_set(args, run_dir.config)
    start = time.perf_counter()
    hyps = [t.text for t in translator.stream(sources, max_tokens=args.max_tokens)]
    seconds = time.perf_counter() - start
    if args.output:
        durable.write_text(args.output, "\n".join(hyps) + "\n")
    scores = score_translations(hyps, refs)
    ppl = _perplexity(model, tokenizer, sources, refs, cfg, translator.device)
    search = choice.describe_search()
    if args.json:
        print(
            durable.dumps(
                {
                    "test_set": name,
                    "search": search,
                    "decoding": choice.to_dict(),
                    "decoding_from": origin,
                    "sentences": len(hyps),
                    "decode_seconds": round(seconds, 3),
                    "sentences_per_second": round(len(hyps) / seconds, 2),
                    **scores.to_dict(),
                    "ref_perplexity": ppl.perplexity,
                    "ref_nll_per_token": ppl.per_token,
                    "ref_tokens": ppl.tokens,
                },
            )
        )
        return 0
    print(
        f"{name}: {len(hyps)} sentences, {search}, {seconds:.1f} s "
        f"({len(hyps) / seconds:.1f} sentences/s)"
    )
    print(f"decoding settings: {origin}")
    for line in scores.lines():
        print(line)
    print(f"reference perplexity    {ppl.perplexity:6.2f}  ({ppl.tokens} target tokens incl. </s>)")
    return 0


def _numbers(text: str, kind: type, option: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise _user_error(f"{option} must be comma-separated numbers, got {text!r}") from None


def _grid(args: argparse.Namespace):
    """The --choose grid; a search flag given fixes its setting."""

    beams = (args.beam,) if args.beam is not None else _numbers(args.beams, int, "--beams")
    alphas = (args.alpha,) if args.alpha is not None else _numbers(args.alphas, float, "--alphas")
    stops = (args.exact_stop,) if args.exact_stop is not None else (False, True)
    try:
        return Grid(_numbers(args.averages, int, "--averages"), beams, alphas, stops)
    except ValueError as err:
        raise _user_error(str(err)) from None


def _progress(candidate) -> None:
    print(
        f"choose [{candidate.stage}] {candidate.choice.describe()}: sacreBLEU "
        f"{candidate.scores['bleu']:.2f} ({candidate.seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


def _choose(args: argparse.Namespace) -> int:
    """--choose: the staged search on this set; the best and every candidate go to
    RUN_DIR/decoding.json."""

    if args.split and args.split.startswith("test"):
        raise _user_error(
            f"--choose fits the decoding settings to the split it decodes: choose on the "
            f"validation split (--split val), not {args.split}"
        )
    run_dir, device = open_run(args)
    sources, refs, name = _test_set(args, run_dir.config)
    grid = _grid(args)
    if args.weights is not None or args.average is not None:
        weights = [(args.weights or "latest", args.average or 0)]
    else:
        try:
            best_step = run_dir.best_checkpoint_step()
        except RunOpenError as err:
            raise _user_error(str(err)) from None
        weights = weight_options(grid, run_dir.checkpoint_steps(), best_step)
    loaded: dict[tuple, object] = {}

    def translate(choice, lines: list[str]) -> list[str]:
        key = (choice.weights, choice.average)
        if key not in loaded:  # the stages go weights first: one model in memory at a time
            loaded.clear()
            loaded[key] = load_weights(run_dir, choice, device, fast=not args.reference)
        translator = make_translator(loaded[key], run_dir, choice, args)
        return [t.text for t in translator.stream(lines, max_tokens=args.max_tokens)]

    best, candidates = choose(bleu_scorer(translate, sources, refs), weights, grid, _progress)
    path = run_dir.record_decoding(
        best.choice,
        metric="sacreBLEU (cased, 13a)",
        score=best.scores["bleu"],
        test_set=name,
        sentences=len(sources),
        max_len_offset=args.max_len_offset,
        grid=dataclasses.asdict(grid),
        candidates=[c.to_dict() for c in candidates],
    )
    if args.json:
        print(path.read_text(encoding="utf-8"), end="")
        return 0
    print(f"{'stage':8} {'settings':62} {'BLEU':>6} {'chrF':>6} {'s':>6}")
    for c in candidates:
        mark = "*" if c is best else " "
        row = f"{c.stage:8} {c.choice.describe():61}{mark} {c.scores['bleu']:6.2f}"
        print(f"{row} {c.scores['chrf']:6.2f} {c.seconds:6.1f}")
    print(
        f"chosen on {name} ({len(sources)} sentences): {best.choice.describe()}, sacreBLEU "
        f"{best.scores['bleu']:.2f}; recorded in {path}"
    )
    return 0
