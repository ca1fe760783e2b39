"""The Multi30k issue's Hugging Face peer, trained from scratch on this machine's budget.

Issue 6 measured a `transformers` MarianMT (d_model 256, 3+3 layers, 4 heads, d_ff 1024, tied
embeddings, 7.6M parameters; byte-level BPE of 8,000; Adam, warm-up to 1e-3, label smoothing
0.1, about 4,096 target tokens a batch; the last 3 checkpoints averaged) after 60 minutes on
another machine's 2 cores. This script trains the same peer here, on the same data and clock,
so that our runs can be compared with it on the same budget (`docs/results.md`):

    python scripts/hf_peer.py train --data-dir ../shared/data --out runs/hf-peer
    python scripts/hf_peer.py evaluate runs/hf-peer --data-dir ../shared/data \
        --split val --beam 4 --length-penalty 1.0

The peer warmed up for 1,000 of the about 1,800 steps its hour held (56%). A machine with
another speed holds another number of steps, so the schedule here runs on the clock: the rate
rises linearly to the peak over the first `--warmup-frac` of the budget, then falls linearly
to 0 at its end (`transformers.get_linear_schedule_with_warmup`'s shape). `MarianConfig` does
not scale the embeddings by sqrt(d_model); `--scale-embedding` does, and on this budget the
peer learns to translate only with it (`docs/results.md`: 3-4 BLEU without, 37.7 with).
`evaluate --output FILE` keeps the translations (for `sacrebleu --paired-bs`). Needs
`pip install -e .[bench]` (transformers, tokenizers).

Shape legend: B sentences, S source length, T target length, V vocabulary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout's benchmarks/
from benchmarks.common import BOS, EOS, PAD, marian_config

SPECIALS = ["<pad>", "<s>", "</s>"]  # the tokenizer's special tokens: ids PAD, BOS, EOS


def _lines(split: str, lang: str, data_dir: str) -> list[str]:
    from transformer.data.corpus import read_lines
    from transformer.data.multi30k import multi30k_files

    files = multi30k_files(split, lang, "de" if lang == "en" else "en", data_dir=data_dir)
    return read_lines(files[0])


def _tokenizer(out: Path, data_dir: str | None = None, vocab: int = 8000):
    """Byte-level BPE learnt on both sides of the training split (or loaded from `out`)."""
    from tokenizers import ByteLevelBPETokenizer

    if (out / "vocab.json").exists():
        return ByteLevelBPETokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
    tok = ByteLevelBPETokenizer()
    text = _lines("train", "de", data_dir) + _lines("train", "en", data_dir)
    tok.train_from_iterator(text, vocab_size=vocab, special_tokens=SPECIALS, show_progress=False)
    tok.save_model(str(out))
    return tok


def _model(vocab: int, scale_embedding: bool = False):
    from transformers import MarianMTModel

    cfg = marian_config(
        vocab,
        dropout=0.1,
        max_position_embeddings=256,
        forced_eos_token_id=None,
        scale_embedding=scale_embedding,
    )
    return MarianMTModel(cfg)


def _batches(pairs: list[tuple[list[int], list[int]]], max_tokens: int, rng: random.Random):
    """Length-bucketed batches of at most `max_tokens` padded target positions (y </s>), in
    random order: [(src (B, S), tgt (B, T + 1) = <s> y </s>)]."""
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][1]), rng.random()))
    batches, chunk, longest = [], [], 0
    for i in order:
        size = len(pairs[i][1])
        if chunk and max(longest, size) * (len(chunk) + 1) > max_tokens:
            batches.append(chunk)
            chunk, longest = [], 0
        chunk.append(i)
        longest = max(longest, size)
    batches.append(chunk)
    rng.shuffle(batches)
    for chunk in batches:
        src = [pairs[i][0] for i in chunk]
        tgt = [[BOS, *pairs[i][1]] for i in chunk]
        yield _pad(src), _pad(tgt)


def _pad(rows: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for r, ids in enumerate(rows):
        out[r, : len(ids)] = torch.tensor(ids)
    return out


def _encode(tok, texts: list[str], limit: int = 254) -> list[list[int]]:
    return [[*e.ids[:limit], EOS] for e in tok.encode_batch(texts)]


def _rate(elapsed: float, budget: float, peak: float, warmup_frac: float) -> float:
    p = min(elapsed / budget, 1.0)
    return peak * (p / warmup_frac if p < warmup_frac else (1 - p) / (1 - warmup_frac))


def train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tok = _tokenizer(out, args.data_dir)
    src = _encode(tok, _lines("train", args.src, args.data_dir))
    tgt = _encode(tok, _lines("train", args.tgt, args.data_dir))
    pairs = list(zip(src, tgt, strict=True))
    model = _model(tok.get_vocab_size(), args.scale_embedding).train()
    (out / "scale_embedding").write_text(str(args.scale_embedding))
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed_positions" not in n)
    print(f"MarianMT {n_params / 1e6:.2f}M parameters, {len(pairs)} pairs", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
    budget, rng, step, tokens = 60.0 * args.minutes, random.Random(args.seed), 0, 0
    start = time.monotonic()
    while time.monotonic() - start < budget:
        for x, y in _batches(pairs, args.max_tokens, rng):
            elapsed = time.monotonic() - start
            if elapsed >= budget:
                break
            for group in opt.param_groups:
                group["lr"] = _rate(elapsed, budget, args.peak, args.warmup_frac)
            logits = model(input_ids=x, attention_mask=x.ne(PAD), decoder_input_ids=y[:, :-1])
            loss = F.cross_entropy(logits.logits.flatten(0, 1), y[:, 1:].flatten(),
                                   ignore_index=PAD, label_smoothing=0.1)  # fmt: skip
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step, tokens = step + 1, tokens + int(y[:, 1:].ne(PAD).sum())
            if step % args.save_every == 0:
                _save(model, out, step, args.keep)
            if step % args.log_every == 0:
                lr = opt.param_groups[0]["lr"]
                print(f"step {step} {elapsed / 60:.1f} min lr {lr:.2e} loss {loss.item():.3f} "
                      f"{tokens / elapsed:.0f} tgt tok/s", flush=True)  # fmt: skip
    _save(model, out, step, args.keep)
    print(f"time limit at step {step}: {tokens} target tokens, "
          f"{tokens / (time.monotonic() - start):.0f} tok/s", flush=True)  # fmt: skip


def _save(model, out: Path, step: int, keep: int) -> None:
    torch.save(model.state_dict(), out / f"step-{step:06d}.pt")
    for old in sorted(out.glob("step-*.pt"))[:-keep]:
        old.unlink()


def _averaged(run: Path, last: int):
    paths = sorted(run.glob("step-*.pt"))[-last:]
    states = [torch.load(p, map_location="cpu") for p in paths]
    avg = {k: sum(s[k].double() for s in states) / len(states) for k in states[0]}
    return {k: v.to(states[0][k].dtype) for k, v in avg.items()}, [p.name for p in paths]


def evaluate(args: argparse.Namespace) -> None:
    from transformer.evaluation.bleu import score_translations

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    if not (run / "vocab.json").exists() or not any(run.glob("step-*.pt")):
        raise SystemExit(f"{run}: no vocab.json or step-*.pt checkpoints (run `train` first)")
    tok = _tokenizer(run)
    scaled = (run / "scale_embedding").exists() and (run / "scale_embedding").read_text() == "True"
    model = _model(tok.get_vocab_size(), scaled).eval()
    state, used = _averaged(run, args.average)
    model.load_state_dict(state)
    sources = _encode(tok, _lines(args.split, args.src, args.data_dir))
    refs = _lines(args.split, args.tgt, args.data_dir)
    hyps = [""] * len(sources)
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        x = _pad([sources[i] for i in chunk])
        with torch.inference_mode():
            ids = model.generate(input_ids=x, attention_mask=x.ne(PAD), num_beams=args.beam,
                                 do_sample=False, length_penalty=args.length_penalty,
                                 max_new_tokens=x.size(1) + 50)  # fmt: skip
        for i, row in zip(chunk, ids.tolist(), strict=True):
            hyps[i] = tok.decode([t for t in row if t not in (PAD, BOS, EOS)]).strip()
    if args.output:  # one translation per line, in the split's order
        Path(args.output).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    scores = score_translations(hyps, refs).to_dict()  # sacreBLEU, chrF, lowercased BLEU
    setting = dict(split=args.split, beam=args.beam, length_penalty=args.length_penalty)
    print(json.dumps({**setting, "checkpoints": used, **scores}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--minutes", type=float, default=60.0)
    t.add_argument("--max-tokens", type=int, default=4096)
    t.add_argument("--peak", type=float, default=1e-3)
    t.add_argument("--warmup-frac", type=float, default=1000 / 1800)
    t.add_argument("--save-every", type=int, default=50)
    t.add_argument("--keep", type=int, default=3)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--scale-embedding", action="store_true", help="embeddings x sqrt(d_model)")
    e = sub.add_parser("evaluate")
    e.add_argument("run")
    e.add_argument("--split", default="val")
    e.add_argument("--beam", type=int, default=4)
    e.add_argument("--length-penalty", type=float, default=1.0)
    e.add_argument("--average", type=int, default=3)
    e.add_argument("--output", help="also write the translations to this file")
    for p in (t, e):
        p.add_argument("--data-dir", default=None)
        p.add_argument("--src", default="de")
        p.add_argument("--tgt", default="en")
        p.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.command == "train" and not 0 < args.warmup_frac < 1:
        parser.error(f"--warmup-frac must be in (0, 1), got {args.warmup_frac}")
    if args.command == "train" and not args.minutes > 0:
        parser.error(f"--minutes must be > 0, got {args.minutes}")
    (train if args.command == "train" else evaluate)(args)


if __name__ == "__main__":
    main()
