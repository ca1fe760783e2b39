"""Micro-benchmarks behind docs/benchmarks.md's "Second machine" section (not part of the CLI).

    python scripts/micro_bench.py step [--threads 2] [--tokens 2048] [--bf16] [--no-malloc]
                                       [--compile]
    python scripts/micro_bench.py step-hf   # our training step vs Hugging Face MarianMT's
    python scripts/micro_bench.py loss      # our closed-form-gradient loss vs autograd
    python scripts/micro_bench.py dropout   # our Dropout vs F.dropout, forward + backward
    python scripts/micro_bench.py linear    # decoding-sized products: packed (oneDNN) vs F.linear
    python scripts/micro_bench.py attend-one  # 1-4 queries per head: our bmm path vs SDPA
    python scripts/micro_bench.py attend-half  # bf16 SDPA vs SDPA in float32, fwd (+ bwd)
    python scripts/micro_bench.py attend-decode [--beam 4] [--data-dir D]  # end to end, decoding
    python scripts/micro_bench.py row-max   # greedy's row_max vs logits.max(dim=-1)
    python scripts/micro_bench.py skip-padding [--data-dir D]  # decoding, padding skipped or not
    python scripts/micro_bench.py decode-speed [--data-dir D]  # sentences/s, for A/B checkouts

`step` times one training step (forward, backward, Adam) of the Multi30k-sized model (d_model
256, 4 heads, 3+3 layers, d_ff 1024, vocabulary 8,188, shared embeddings, dropout 0.1) on
random batches of `tokens` target tokens (rows of 16), median of 8 after 3 warm-up steps
(`--compile`: the model under `torch.compile(dynamic=True)`, as variable-length batches would
need; the warm-up, which compiles, is timed and printed). It
only uses the public API, so it also runs against an older checkout of the package:
`PYTHONPATH=/path/to/old/src python scripts/micro_bench.py step` (old and new alternately).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout's benchmarks/
from benchmarks.common import MULTI30K_VOCAB as VOCAB
from benchmarks.common import PAD, marian_config, median_seconds, multi30k_config
from benchmarks.common import alternate as _alternate


def _median_ms(fn, repeats: int, warmup: int) -> float:
    return median_seconds(fn, repeats, warmup) * 1e3


def _model_and_batch(tokens: int):
    """The Multi30k-sized model in train mode and a random batch: src (B, 16), tgt (B, 17)
    int64 with B = tokens // 16."""
    from transformer.models import Transformer

    torch.manual_seed(0)
    cfg = multi30k_config(VOCAB)
    rows = tokens // 16
    src, tgt = torch.randint(4, VOCAB, (rows, 16)), torch.randint(4, VOCAB, (rows, 17))
    model = Transformer(cfg).train()
    try:
        from transformer.fast import optimize  # the fast engine, as `transformer train` runs it
    except ImportError:  # older checkouts had it built into the model
        pass
    else:
        optimize(model)
    return model, src, tgt


def step(args) -> None:
    from transformer.training.loss import label_smoothed_cross_entropy
    from transformer.training.optim import build_adam

    if not args.no_malloc:
        try:
            from transformer.fast import tune_malloc
        except ImportError:  # older checkouts kept it in runtime.py
            from transformer.runtime import tune_malloc
        tune_malloc()
    model, src, tgt = _model_and_batch(args.tokens)
    rows = src.size(0)
    opt = build_adam(model)
    forward = torch.compile(model, dynamic=True) if args.compile else model

    def one_step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = forward(src, tgt[:, :-1])  # (B, T, V)
        sums = label_smoothed_cross_entropy(logits, tgt[:, 1:], 0.1, PAD)
        (sums.loss / sums.n_tokens).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(3):
        one_step()
    warm = time.perf_counter() - start
    ms = _median_ms(one_step, 8, 0)
    print(
        f"step: {rows * 16} target tokens, {ms:.0f} ms, {rows * 16 / ms * 1e3:.0f} tokens/s "
        f"(threads {torch.get_num_threads()}, bf16 {args.bf16}, malloc {not args.no_malloc}, "
        f"compile {args.compile}: 3 warm-up steps {warm:.1f} s)"
    )


def step_hf(args) -> None:
    """Our step against MarianMT's (`pip install -e .[bench]`) at the same size, on the same
    random batch, both float32 with Adam and label smoothing 0.1, alternated, median of 8."""
    from transformers import MarianMTModel

    from transformer.training.loss import label_smoothed_cross_entropy
    from transformer.training.optim import build_adam

    ours, src, tgt = _model_and_batch(args.tokens)
    V, rows = VOCAB, src.size(0)
    hf = MarianMTModel(marian_config(V, dropout=0.1, max_position_embeddings=256)).train()
    opt_ours, opt_hf = build_adam(ours), torch.optim.Adam(hf.parameters(), 1e-4, (0.9, 0.98))

    def step_ours():
        sums = label_smoothed_cross_entropy(ours(src, tgt[:, :-1]), tgt[:, 1:], 0.1, PAD)
        (sums.loss / sums.n_tokens).backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_hf():
        logits = hf(input_ids=src, decoder_input_ids=tgt[:, :-1]).logits  # (B, T, V)
        F.cross_entropy(
            logits.flatten(0, 1), tgt[:, 1:].flatten(), label_smoothing=0.1, ignore_index=PAD
        ).backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    a, b = (ms / 1e3 for ms in _alternate(step_ours, step_hf, rounds=8, calls=1))
    n = rows * 16
    print(
        f"step of {n} target tokens, float32, threads {torch.get_num_threads()}: ours "
        f"{n / a:.0f} tokens/s, MarianMT {n / b:.0f} tokens/s, {b / a:.2f}x"
    )


def loss(args) -> None:
    from transformer.training.loss import label_smoothed_cross_entropy

    def autograd_sums(logits, target, eps, pad):  # the same loss through autograd
        V = logits.size(-1)
        logp = torch.log_softmax(logits, -1)
        nll = -logp.gather(1, target.unsqueeze(1)).squeeze(1)
        smooth = -(logp.sum(1) - logp[:, pad]) / (V - 1)
        return (((1 - eps) * nll + eps * smooth) * target.ne(pad)).sum()

    x = torch.randn(2048, 8188, requires_grad=True)
    y = torch.randint(0, 8188, (2048,))

    def ours():
        label_smoothed_cross_entropy(x, y, 0.1, 0).loss.backward()
        x.grad = None

    def reference():
        autograd_sums(x, y, 0.1, 0).backward()
        x.grad = None

    a, b = _median_ms(ours, 15, 3), _median_ms(reference, 15, 3)
    print(
        f"loss forward + backward (2048 x 8188): ours {a:.1f} ms, autograd {b:.1f} ms, {b / a:.2f}x"
    )


def dropout(args) -> None:
    from transformer.fast.dropout import dropout as our_dropout

    x = torch.randn(128, 16, 256, requires_grad=True)
    g = torch.randn(128, 16, 256)
    a = _median_ms(lambda: our_dropout(x, 0.1).backward(g), 100, 10)
    b = _median_ms(lambda: F.dropout(x, 0.1, True).backward(g), 100, 10)
    print(
        f"dropout forward + backward (128, 16, 256), p 0.1: ours {a:.2f} ms, "
        f"F.dropout {b:.2f} ms, {b / a:.2f}x"
    )


def linear(args) -> None:
    """x (rows, in) @ Wᵀ + b at the decoder's sizes: `PackedWeight` (oneDNN, packed once) and
    `F.linear` alternately, median of 9 rounds of 20 calls each."""
    from transformer.fast.packed import packing_available

    if not packing_available():
        print("this torch has no usable oneDNN linear kernel: nothing to compare")
        return
    print("| rows | in | out | F.linear ms | packed ms | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for rows in (64, 256):
        sizes = ((8, 8), (256, 768), (256, 256), (256, 1024), (1024, 256), (256, VOCAB))
        for n_in, n_out in sizes:  # (8, 8): the fixed cost of a call
            plain_ms, packed_ms = _linear_pair(rows, n_in, n_out)
            print(
                f"| {rows} | {n_in} | {n_out} | {plain_ms:.3f} | {packed_ms:.3f} | "
                f"{plain_ms / packed_ms:.2f}x |"
            )


def _linear_pair(rows: int, n_in: int, n_out: int) -> tuple[float, float]:
    from transformer.fast.packed import PackedWeight

    x, w, b = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out)
    packed = PackedWeight(w, b)
    with torch.inference_mode():
        return _alternate(lambda: F.linear(x, w, b), lambda: packed(x), rounds=9, calls=20)


def attend_one(args) -> None:
    """A few queries per (batch, head) over S cached keys, no autograd (a decoding step):
    `attend` (its batched-matrix-product path) and torch's SDPA alternately. One query:
    self-attention of greedy (64 sentences) and beam 4 (256 rows); four queries over 64
    sentences: beam 4's cross-attention, whose 4 beams share their sentence's memory; eight:
    the largest T the path takes (e.g. an encoder over short sentences, without autograd)."""
    print("| B·H | queries | keys | SDPA ms | ours ms | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch, queries in ((64, 1), (256, 1), (64, 4), (64, 8)):
        for keys in (16, 32, 64):
            sdpa_ms, ours_ms = _attend_pair(batch, keys, queries)
            print(
                f"| {batch * 4} | {queries} | {keys} | {sdpa_ms:.3f} | {ours_ms:.3f} | "
                f"{sdpa_ms / ours_ms:.2f}x |"
            )


def _attend_pair(batch: int, keys: int, queries: int) -> tuple[float, float]:
    from transformer.fast.attend import attend

    q, k, v = (torch.randn(batch, 4, n, 64) for n in (queries, keys, keys))
    mask = torch.zeros(batch, 1, 1, keys, dtype=torch.bool)  # True = padding
    mask[::3, ..., keys // 2 :] = True  # in a third of the rows
    allowed = ~mask
    with torch.inference_mode():
        return _alternate(
            lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=allowed),
            lambda: attend(q, k, v, mask),
            rounds=9,
            calls=50,
        )


def attend_half(args) -> None:
    """bf16 inputs: torch's SDPA in bf16 against SDPA in float32 (inputs cast up, output cast
    back, as `attend` does under autograd on the CPU), forward + backward and forward alone,
    on the attention shapes of the GPT config (causal) and of Multi30k training batches."""
    pad = torch.zeros(128, 1, 1, 24, dtype=torch.bool)
    pad[::3, ..., 20:] = True  # True = padding, in a third of the rows
    cases = (  # name, (B, H, T, S, Dk), SDPA keyword arguments
        ("GPT causal", (32, 6, 128, 128, 32), {"is_causal": True}),
        ("encoder, padding", (128, 4, 24, 24, 64), {"attn_mask": ~pad}),
        ("decoder, causal", (128, 4, 24, 24, 64), {"is_causal": True}),
        ("cross, padding", (128, 4, 22, 24, 64), {"attn_mask": ~pad}),
    )
    print("| shapes | B, H, T, S, Dk | pass | bf16 ms | float32 ms | bf16 / float32 |")
    print("|---|---|---|---:|---:|---:|")
    for name, (b, h, t, s, d), kw in cases:
        q = torch.randn(b, h, t, d, dtype=torch.bfloat16, requires_grad=True)
        k, v = (torch.randn(b, h, s, d, dtype=torch.bfloat16, requires_grad=True) for _ in "kv")
        for grad in (True, False):
            with torch.set_grad_enabled(grad):
                half = functools.partial(_sdpa_pass, q, k, v, kw, grad, False)
                full = functools.partial(_sdpa_pass, q, k, v, kw, grad, True)
                ms = _alternate(half, full, rounds=7, calls=5)
            print(
                f"| {name} | {b}, {h}, {t}, {s}, {d} | {'fwd+bwd' if grad else 'fwd'} | "
                f"{ms[0]:.2f} | {ms[1]:.2f} | {ms[0] / ms[1]:.2f} |"
            )


def _sdpa_pass(q, k, v, kw: dict, grad: bool, upcast: bool) -> None:
    """One SDPA call on bf16 q, k, v (in float32 when `upcast`), with backward when `grad`."""
    if upcast:
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kw).to(q.dtype)
    else:
        out = F.scaled_dot_product_attention(q, k, v, **kw)
    if grad:
        out.sum().backward()


def attend_decode(args) -> None:
    """`transformer bench decode`'s cached decoding of ours (beam `--beam`, 64 sentences a
    batch, the first 512 test sentences) with the single-query bmm path allowed as shipped
    and with it switched off (SDPA for every call), alternately, median of 6 rounds."""
    import transformer.fast.attend as A
    from benchmarks import decode as bench

    src, ref_len = bench._tokenized(args.data_dir, 512)
    batches = bench._batches(src, ref_len, 64, per_sentence=False)
    run = bench._ours(True, args.beam, with_scores=False)
    shipped = A._BMM_MIN_ROWS

    def decode(min_rows: int) -> None:
        A._BMM_MIN_ROWS = min_rows
        for batch in batches:
            run(*batch)

    try:
        sdpa_ms, ours_ms = _alternate(lambda: decode(10**9), lambda: decode(shipped), 6, 1)
    finally:
        A._BMM_MIN_ROWS = shipped
    print(
        f"beam {args.beam}, 512 sentences: SDPA only {sdpa_ms / 1e3:.2f} s, as shipped "
        f"{ours_ms / 1e3:.2f} s, {sdpa_ms / ours_ms:.3f}x"
    )


def row_max(args) -> None:
    """`transformer.fast.topk.row_max` and `logits.max(dim=-1)` on (rows, 8188) logits."""
    from transformer.fast.topk import row_max as ours

    for rows in (64, 256):
        logits = torch.randn(rows, VOCAB)
        plain_ms, ours_ms = _alternate(
            lambda x=logits: x.max(dim=-1), lambda x=logits: ours(x), rounds=9, calls=100
        )
        print(
            f"({rows}, {VOCAB}): max {plain_ms:.3f} ms, row_max {ours_ms:.3f} ms, "
            f"{plain_ms / ours_ms:.2f}x"
        )


def skip_padding(args) -> None:
    """The encoder and the cross-attention key/value projection on the real tokens only
    (`transformer.fast.padding`) against the padded computation, in one process: the first
    1,024 test sentences in batches of 64, each batch decoded by both variants back to back
    (which goes first alternates), greedy without scores and beam 4, cached, packed."""
    import transformer.fast.padding as padding
    from benchmarks import decode as bench

    skipping = padding._padding_of  # None: the padded computation (the reference layers')
    padded = lambda mask, x: None  # noqa: E731

    def use(variant) -> None:
        padding._padding_of = variant

    src, ref_len = bench._tokenized(args.data_dir, 1024)
    batches = bench._batches(src, ref_len, 64, per_sentence=False)
    try:
        for name, run in (
            ("greedy", bench._ours(True, 1, with_scores=False)),
            ("beam 4", bench._ours(True, 4)),
        ):
            total = {0: 0.0, 1: 0.0}  # 0: padded, 1: skipping
            for i, batch in enumerate(batches):
                for which in (0, 1) if i % 2 else (1, 0):
                    use((padded, skipping)[which])
                    start = time.perf_counter()
                    run(*batch)
                    total[which] += time.perf_counter() - start
            print(
                f"{name}: padded {total[0]:.2f} s, skipping {total[1]:.2f} s, "
                f"{total[0] / total[1]:.3f}x"
            )
    finally:
        use(skipping)


def decode_speed(args) -> None:
    """Sentences/s of our cached greedy (without scores) and beam 4 decoding on the first 256
    test sentences (batches of 64), median of 3: run it alternately against an older
    checkout, `PYTHONPATH=<old>/src python scripts/micro_bench.py decode-speed`."""
    from benchmarks import decode as bench

    src, ref_len = bench._tokenized(args.data_dir, 256)
    batches = bench._batches(src, ref_len, 64, per_sentence=False)
    for name, run in (
        ("greedy", bench._ours(True, 1, with_scores=False)),
        ("beam 4", bench._ours(True, 4)),
    ):
        run(*batches[0])
        seconds = median_seconds(lambda run=run: [run(*batch) for batch in batches], 3)
        print(f"{name}: {256 / seconds:.1f} sentences/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "what",
        choices=[
            "step",
            "step-hf",
            "loss",
            "dropout",
            "linear",
            "attend-one",
            "attend-half",
            "attend-decode",
            "row-max",
            "skip-padding",
            "decode-speed",
        ],
    )
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--data-dir", help="holds multi30k/ (default: $TRANSFORMER_DATA)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--no-malloc", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    commands = {"step": step, "step-hf": step_hf, "loss": loss, "dropout": dropout}
    commands.update({"linear": linear, "attend-one": attend_one, "row-max": row_max})
    commands.update({"attend-half": attend_half, "attend-decode": attend_decode})
    commands.update({"skip-padding": skip_padding, "decode-speed": decode_speed})
    commands[args.what](args)


if __name__ == "__main__":
    main()
