"""`transformer evaluate RUN_DIR`: translate a test set and score it.

Prints sacreBLEU (cased, 13a) with its signature, chrF, BLEU on lowercased text (the figure most
Multi30k papers report; see `transformer.evaluation.bleu` for how it differs from Moses-
tokenized multi-bleu.perl), and the perplexity of the references under the model. The test
set is `--src FILE --ref FILE` (plain or .gz) or a Multi30k `--split` (languages from the
run's config unless given). A language-model run (data.task = "lm") is scored on its
validation split instead: nats per token, perplexity, bits per character (`evaluate_lm`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from transformer.cli.translate import _user_error, add_search_arguments, build_translator


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
    parser.set_defaults(run=run)


def _test_set(args: argparse.Namespace, run_cfg) -> tuple[list[str], list[str], str]:
    """(sources, references, description) after checking the options."""
    from transformer.data.corpus import DataError, read_lines

    if bool(args.split) == bool(args.src or args.ref):
        raise _user_error("give either --src FILE --ref FILE or --split NAME")
    try:
        if args.split:
            from transformer.data.multi30k import multi30k_files

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
    import torch

    from transformer.evaluation import corpus_perplexity

    limit = cfg.max_len
    pairs = [
        (
            tokenizer.encode(s)[:limit] or [tokenizer.eos_id],
            [tokenizer.bos_id, *tokenizer.encode(r)[: limit - 1], tokenizer.eos_id],
        )
        for s, r in zip(sources, refs, strict=True)
    ]
    pairs.sort(key=lambda p: len(p[1]))

    def pad(rows):
        out = torch.full((len(rows), max(map(len, rows))), cfg.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out.to(device)

    batches = (
        (pad([p[0] for p in pairs[i : i + 64]]), pad([p[1] for p in pairs[i : i + 64]]))
        for i in range(0, len(pairs), 64)
    )
    return corpus_perplexity(model, batches, cfg.pad_id)


def run(args: argparse.Namespace) -> int:
    from transformer.cli import evaluate_lm
    from transformer.evaluation import score_translations

    if evaluate_lm.is_lm_run(args.run_dir):  # a GPT run: loss / perplexity / bits per char
        return evaluate_lm.run(args)
    translator, model, tokenizer, cfg, run_cfg = build_translator(args)
    sources, refs, name = _test_set(args, run_cfg)
    start = time.perf_counter()
    hyps = [t.text for t in translator.stream(sources, max_tokens=args.max_tokens)]
    seconds = time.perf_counter() - start
    if args.output:
        Path(args.output).write_text("\n".join(hyps) + "\n", encoding="utf-8")
    scores = score_translations(hyps, refs)
    ppl = _perplexity(model, tokenizer, sources, refs, cfg, translator.device)
    search = "greedy" if args.beam == 1 else f"beam {args.beam}, alpha {args.alpha}"
    if args.beam > 1 and args.exact_stop:
        search += ", exact stop"
    if args.json:
        print(
            json.dumps(
                {
                    "test_set": name,
                    "search": search,
                    "sentences": len(hyps),
                    "decode_seconds": round(seconds, 3),
                    "sentences_per_second": round(len(hyps) / seconds, 2),
                    **scores.to_dict(),
                    "ref_perplexity": ppl.perplexity,
                    "ref_nll_per_token": ppl.per_token,
                    "ref_tokens": ppl.tokens,
                },
                indent=1,
            )
        )
        return 0
    print(
        f"{name}: {len(hyps)} sentences, {search}, {seconds:.1f} s "
        f"({len(hyps) / seconds:.1f} sentences/s)"
    )
    for line in scores.lines():
        print(line)
    print(f"reference perplexity    {ppl.perplexity:6.2f}  ({ppl.tokens} target tokens incl. </s>)")
    return 0
