"""`transformer bench decode`: sentences/s of greedy and beam-4 decoding, with and without the
KV cache, against Hugging Face `transformers` MarianMT `generate()` of the same size.

Both models are randomly initialised with the MarianMT-like size of issue 6 (d_model 256, 3+3
layers, 4 heads, d_ff 1024, vocabulary 8000, tied embeddings; ~7.6M parameters). The sources
are Multi30k test_2016_flickr German sentences in a byte-level BPE of 8,000 tokens (learnt
with the `tokenizers` library on the Multi30k training set: only the lengths matter to a
random model), in batches of 64 in corpus order.

Random weights almost never emit </s>, so the output lengths are forced, equal on both sides.
Each sentence's length is L = its English reference's length in the same BPE plus one (for
</s>). `--lengths batch` (default, the strict comparison): every sentence of a batch gets the
batch's longest L — ours with `min_len = max_len = L`, Hugging Face with `min_new_tokens =
max_new_tokens = L` — so no sentence finishes early on either side. `--lengths sentence`
mimics a trained model whose sentences end at different steps: each sentence decodes exactly
its own L steps — ours with per-sentence `min_len = max_len = L` (a finished sentence leaves
the batch), Hugging Face with a logits processor that blocks </s> before step L and forces it
at step L (finished rows stay in the batch as padding until the longest one ends). Every
variant runs the same sentences; the variants take turns within each repeat (side by side,
same load) and the median over repeats is reported. "no scores" is greedy decoding without
the log-softmax (`with_scores=False`, what `transformer translate --beam 1` runs): HF
`generate()` computes no scores either unless asked to. Ours runs with its linear weights
packed for oneDNN (`transformer.fast.packed`, as `translate` and `evaluate` run it); the
"unpacked" rows are the same decoders on plain `nn.Linear`, to show what packing adds. Both
our variants skip the source padding in the encoder and in the cross-attention key/value
projection (`transformer.fast.padding`); our beam search keeps one encoder output per
sentence for its 4 beams, whose cross-attention queries go together (4 per head), and it and
the beams' self-attention take `transformer.attention`'s batched-matrix-product path (from
1,024 (batch, head, query) rows); greedy's 64 x 4 stay on SDPA. HF `generate()` repeats the
encoder output per beam and computes over the padding.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import torch

from benchmarks.common import BOS, EOS, PAD, marian_config, multi30k_config, seconds

VOCAB = 8000  # the byte-level BPE of the sources


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="directory holding multi30k/ (default: $TRANSFORMER_DATA or the download cache)",
    )
    parser.add_argument(
        "--sentences", type=int, default=None, help="first N test sentences (default: all)"
    )
    parser.add_argument(
        "--slow-sentences",
        type=int,
        default=64,
        help="sentences for the slow variants without a cache, compared with "
        "the cached ones on the same subset (default 64: one batch)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="median over this many runs")
    parser.add_argument("--no-hf", action="store_true", help="skip Hugging Face transformers")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--lengths",
        choices=("batch", "sentence"),
        default="batch",
        help="force every sentence to its batch's longest reference length "
        "(default) or to its own (see the module docstring)",
    )


def _tokenized(data_dir: str | None, n: int | None) -> tuple[list[list[int]], list[int]]:
    """Source ids and reference lengths (in tokens, +1 for </s>) of the first n test pairs
    (None: all)."""
    from tokenizers import ByteLevelBPETokenizer

    from transformer.data.corpus import read_lines
    from transformer.data.multi30k import multi30k_files

    train_de, train_en = multi30k_files("train", "de", "en", data_dir=data_dir)
    test_de, test_en = multi30k_files("test_2016_flickr", "de", "en", data_dir=data_dir)
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        read_lines(train_de) + read_lines(train_en),
        vocab_size=VOCAB,
        special_tokens=["<pad>", "<s>", "</s>"],
        show_progress=False,
    )
    src = [e.ids for e in tok.encode_batch(read_lines(test_de)[:n])]
    ref_len = [len(e.ids) + 1 for e in tok.encode_batch(read_lines(test_en)[:n])]
    return src, ref_len


def _batches(src: list[list[int]], ref_len: list[int], size: int, per_sentence: bool):
    """(src (B, S) int64 padded, forced output lengths (B,) int64) per batch, in corpus
    order; without `per_sentence` every length is the batch's longest."""
    out = []
    for i in range(0, len(src), size):
        chunk = src[i : i + size]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), PAD, dtype=torch.long)
        for row, s in enumerate(chunk):
            ids[row, : len(s)] = torch.tensor(s)
        lengths = torch.tensor(ref_len[i : i + size])
        out.append((ids, lengths if per_sentence else lengths.max().expand(len(chunk))))
    return out


def _ours(
    use_cache: bool, beam: int, with_scores: bool = True, packed: bool = True, reference=False
) -> Callable:
    from transformer.decoding import SpecialIds, beam_search, greedy_decode
    from transformer.fast import PIECES, optimize, pack_for_inference
    from transformer.models import Transformer

    cfg = multi30k_config(VOCAB, max_len=512)
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    if not reference:  # as `transformer translate` and `evaluate` run it
        optimize(model, PIECES if packed else [p for p in PIECES if p is not pack_for_inference])
    ids = SpecialIds(bos=BOS, eos=EOS, pad=PAD)

    def run(src: torch.Tensor, lengths: torch.Tensor) -> None:
        if beam == 1:
            greedy_decode(
                model,
                src,
                ids,
                min_len=lengths,
                max_len=lengths,
                use_cache=use_cache,
                with_scores=with_scores,
            )
        else:
            beam_search(
                model,
                src,
                ids,
                beam_size=beam,
                alpha=0.6,
                min_len=lengths,
                max_len=lengths,
                use_cache=use_cache,
            )

    run.params = sum(p.numel() for p in model.parameters())
    return run


def _hf(use_cache: bool, beam: int) -> Callable:
    from transformers import LogitsProcessorList, MarianMTModel

    cfg = marian_config(VOCAB, max_position_embeddings=512, forced_eos_token_id=None)
    torch.manual_seed(0)
    model = MarianMTModel(cfg).eval()

    def run(src: torch.Tensor, lengths: torch.Tensor) -> None:
        longest = int(lengths.max())
        if bool(lengths.eq(longest).all()):
            forced = dict(min_new_tokens=longest)
        else:
            forced = dict(logits_processor=LogitsProcessorList([_ForceEos(lengths, beam)]))
        with torch.inference_mode():
            model.generate(
                input_ids=src,
                attention_mask=src.ne(PAD),
                num_beams=beam,
                do_sample=False,
                max_new_tokens=longest,
                use_cache=use_cache,
                **({"length_penalty": 0.6} if beam > 1 else {}),
                **forced,
            )

    # final_logits_bias is a buffer; Marian's sinusoidal positions are frozen parameters.
    run.params = sum(p.numel() for n, p in model.named_parameters() if "embed_positions" not in n)
    return run


class _ForceEos:
    """A Hugging Face logits processor: row r (of B*K, sentence-major) may not emit </s>
    before its L-th new token and must emit it then."""

    def __init__(self, lengths: torch.Tensor, beam: int) -> None:
        self.lengths = lengths.repeat_interleave(beam)  # (B*K,)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.size(1)  # new tokens so far + 1 (the decoder start token)
        scores[self.lengths.gt(step), EOS] = float("-inf")
        at_end = self.lengths.eq(step)
        scores[at_end] = float("-inf")
        scores[at_end, EOS] = 0.0
        return scores


def _variants(hf: bool, reference: bool = False) -> list[tuple[str, bool, Callable]]:
    """(name, slow, runner) for every variant measured (`reference`: ours without the fast
    engine)."""
    r = reference
    out = [
        ("ours greedy, cache", False, _ours(True, 1, reference=r)),
        ("ours greedy, cache, no scores", False, _ours(True, 1, with_scores=False, reference=r)),
        ("ours greedy, no cache", True, _ours(False, 1, reference=r)),
        ("ours beam 4, cache", False, _ours(True, 4, reference=r)),
        ("ours beam 4, no cache", True, _ours(False, 4, reference=r)),
        ("ours greedy, cache, unpacked", False, _ours(True, 1, packed=False, reference=r)),
        ("ours beam 4, cache, unpacked", False, _ours(True, 4, packed=False, reference=r)),
    ]
    if hf:
        out += [
            ("HF generate greedy, cache", False, _hf(True, 1)),
            ("HF generate greedy, no cache", True, _hf(False, 1)),
            ("HF generate beam 4, cache", False, _hf(True, 4)),
        ]
    return out


def _time(runner: Callable, batches) -> float:
    return seconds(lambda: [runner(src, length) for src, length in batches])


def run(args: argparse.Namespace) -> int:
    from transformer.cli.errors import UserError
    from transformer.fast import tune_malloc

    if args.threads:
        torch.set_num_threads(args.threads)
    tune_malloc()  # as `translate` does; process-wide, so Hugging Face gets it too
    sizes = [args.slow_sentences, args.batch_size, args.repeats]
    if min(sizes + ([] if args.sentences is None else [args.sentences])) < 1:
        raise UserError("--sentences, --slow-sentences, --batch-size and --repeats must be >= 1")
    hf = not args.no_hf
    if hf:
        try:
            import transformers  # noqa: F401
        except ImportError:
            print("transformers is not installed: measuring ours only (pip install transformers)")
            hf = False
    src, ref_len = _tokenized(args.data_dir, args.sentences)
    per_sentence = args.lengths == "sentence"
    full = _batches(src, ref_len, args.batch_size, per_sentence)
    n_sub = min(args.slow_sentences, len(src))
    subset = _batches(src[:n_sub], ref_len[:n_sub], args.batch_size, per_sentence)
    variants = _variants(hf, getattr(args, "reference", False))
    load_before = os.getloadavg()
    times: dict[tuple[str, str], list[float]] = {}
    for _name, _slow, runner in variants:  # warm-up: one batch each
        runner(*subset[0])
    for repeat in range(args.repeats):
        for name, slow, runner in variants:
            for label, batches in (("subset", subset), ("full", full)):
                if label == "full" and slow:
                    continue
                times.setdefault((name, label), []).append(_time(runner, batches))
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    _report(args, variants, times, len(src), n_sub, load_before, os.getloadavg())
    return 0


def _report(args, variants, times, n_full, n_sub, load_before, load_after) -> None:
    rate = {
        key: (n_full if key[1] == "full" else n_sub) / statistics.median(v)
        for key, v in times.items()
    }
    print(
        f"\nMulti30k test_2016_flickr de, batch {args.batch_size}, median of {args.repeats}, "
        f"output lengths forced per {args.lengths}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}\n")
    print(f"| variant | params | sentences/s ({n_full} sent.) | sentences/s ({n_sub} sent.) |")
    print("|---|---:|---:|---:|")
    for name, _slow, runner in variants:
        full = rate.get((name, "full"))
        print(
            f"| {name} | {runner.params / 1e6:.2f}M | {f'{full:.1f}' if full else '-'} | "
            f"{rate[(name, 'subset')]:.1f} |"
        )
    print()
    pairs = [
        ("ours greedy, cache", "ours greedy, no cache", "subset", 4.0),
        ("ours beam 4, cache", "ours beam 4, no cache", "subset", None),
        ("ours greedy, cache", "HF generate greedy, cache", "full", 1.5),
        ("ours greedy, cache, no scores", "HF generate greedy, cache", "full", 1.5),
        ("ours beam 4, cache", "HF generate beam 4, cache", "full", 1.5),
        ("ours greedy, no cache", "HF generate greedy, no cache", "subset", None),
        ("ours greedy, cache", "ours greedy, cache, unpacked", "full", None),
        ("ours beam 4, cache", "ours beam 4, cache, unpacked", "full", None),
        ("ours greedy, cache, unpacked", "HF generate greedy, cache", "full", None),
        ("ours beam 4, cache, unpacked", "HF generate beam 4, cache", "full", None),
    ]
    for a, b, label, target in pairs:
        if (a, label) in rate and (b, label) in rate:
            ratio = rate[(a, label)] / rate[(b, label)]
            verdict = "met" if target and ratio >= target else "NOT met"
            goal = f" (target >= {target}x: {verdict})" if target else ""
            print(f"{a} / {b}: {ratio:.2f}x{goal}")
