"""The BERT issue's Hugging Face peer: `BertForMaskedLM` trained from scratch on Multi30k English.

What a user would write with Hugging Face instead of our project (issue 27's target):
`transformers.BertForMaskedLM(BertConfig(...))` from random initialisation, the same WordPiece
vocabulary as ours (loaded with `tokenizers`), `DataCollatorForLanguageModeling` (15% of the
non-special tokens chosen; of those 80% [MASK], 10% a random token, 10% unchanged), AdamW and a
plain PyTorch loop, on the English side of Multi30k train for a wall-clock budget:

    python scripts/hf_bert_peer.py --data-dir ../shared/data --out runs/hf-bert-peer
    python scripts/hf_bert_peer.py --tokenizer runs/bert/tokenizer.json --amp bf16 --out ...
    python scripts/hf_bert_peer.py --masked-val runs/hf-bert-peer/masked_val.json --out ...
    python scripts/hf_bert_peer.py --budget-min 0.05 --limit-train 500 --limit-val 50 \
        --d-model 32 --layers 1 --heads 2 --d-ff 64 --out /tmp/smoke        # a smoke run

Model (the size `configs/multi30k-bert.toml` is to use; each a flag): d_model 256, 4 layers,
4 heads, d_ff 1024, 128 positions, GELU, post-norm, 2 segment types, dropout 0.1, LayerNorm eps
1e-12, init N(0, 0.02²), output tied to the token embedding. Each sentence is one sequence,
[CLS] sentence [SEP] (cut to 128), in length-bucketed batches of at most `--max-tokens` (4096)
padded positions. Loss: mean cross-entropy over the chosen positions.

Tokenizer (`--tokenizer`): a `tokenizer.json` (ours, `WordPiece.to_hf_json`, or any WordPiece
one), our `WordPiece.save` JSON (exported with `to_hf_json`), or a BERT `vocab.txt` (read by
`tokenizers.BertWordPieceTokenizer`; `--cased` for no lowercasing). Without one, our
`WordPiece.train(train lines, --vocab 8000, criterion="frequency")`, the same rule as
`tokenizers`' `WordPieceTrainer`. The run directory keeps `tokenizer.json` and `vocab.txt`.

Schedule: AdamW (0.9, 0.999, eps 1e-6, weight decay 0.01 on the matrices, none on biases and
LayerNorms, as BERT), gradients clipped to norm 1, the rate rising linearly to `--peak` (5e-4)
over the first `--warmup-frac` (10%) of the budget and falling linearly to 0 at its end, on the
clock (as `scripts/hf_peer.py`): a machine of any speed fits the whole schedule in the budget.
`--budget-min` (20) counts the training loop only (batching, masking, forward, backward,
step): tokenisation, model building and the evaluations are outside the clock.

Evaluation (float32, dropout off) on Multi30k val with a FIXED masking: the collator's draws
with `--val-seed` over the whole split at once (a random replacement that lands on a special
token other than [MASK] is redrawn among the non-special ids, as our `mask_tokens` does, so
that no [PAD] appears inside a sentence). The masked split is written to `masked_val.json`
(or read from `--masked-val`), so that our side scores identical masks:

    {"format": "hf_bert_peer masked validation", "version": 1, "vocab_size": V,
     "vocab_sha256": sha256("\\n".join(tokens in id order)), "pad_id", "mask_id", "cls_id",
     "sep_id", "seed", "mlm_probability", "split", "n_sentences",
     "input_ids": [[CLS, ..., SEP], ...],  "labels": [[-100 or the original id, ...], ...]}

Masked-token accuracy = argmax correct / chosen positions (all chosen: [MASK], random and
unchanged alike); perplexity = exp(mean cross-entropy over the chosen positions). Baseline:
the most frequent non-special token of the (tokenised) training sentences, predicted at every
chosen position. `results.json` and a printed summary come out under `--out`: the machine
(CPU, cores, threads, versions, load average before and after, the process's CPU use), the
precision, `minutes` (training loop), steps, `tokens_seen` (non-padding positions fed, [CLS]
and [SEP] included), `tokens_per_s` (of those, per loop second), `val_accuracy`, `val_ppl`,
`baseline_accuracy`, the eval history (`--eval-every-min`, 5) and the settings. bf16 autocast
pays only where the CPU has AVX512-BF16/AMX (on the 2-core AMD EPYC it is ~10x slower).

Needs `pip install -e .[bench]` (transformers, tokenizers). Shape legend: B sentences,
T length, V vocabulary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
IGNORE = -100
MASKED_VAL_FORMAT = "hf_bert_peer masked validation"
MASKED_VAL_VERSION = 1
OUR_WORDPIECE = "transformer.tokenizers.WordPiece"  # `WordPiece.save`'s "format" field


def _lines(split: str, data_dir: str | None, limit: int = 0) -> list[str]:
    from transformer.data.corpus import read_lines
    from transformer.data.multi30k import multi30k_files

    lines = read_lines(multi30k_files(split, "en", "de", data_dir=data_dir)[0])
    return lines[:limit] if limit else lines


# ------------------------------------------------------------------------------- tokenizer
def load_tokenizer(path: str | None, out: Path, train_lines: list[str], vocab: int, cased: bool):
    """(Hugging Face fast tokenizer, description): from `path`, or ours trained on the lines.
    Writes `tokenizer.json` and `vocab.txt` under `out`."""
    from tokenizers import BertWordPieceTokenizer, Tokenizer
    from transformers import PreTrainedTokenizerFast

    from transformer.tokenizers import WordPiece

    if path is None:
        ours = WordPiece.train(train_lines, vocab, lowercase=not cased, criterion="frequency")
        ours.save(out / "wordpiece.json")
        ours.to_hf_json(out / "tokenizer.json")
        raw, source = Tokenizer.from_file(str(out / "tokenizer.json")), "ours, frequency"
    elif path.endswith(".txt"):
        raw, source = BertWordPieceTokenizer(path, lowercase=not cased)._tokenizer, "vocab.txt"
    else:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        if isinstance(payload, dict) and payload.get("format") == OUR_WORDPIECE:
            WordPiece.load(path).to_hf_json(out / "tokenizer.json")
            raw, source = Tokenizer.from_file(str(out / "tokenizer.json")), "ours, loaded"
        else:
            raw, source = Tokenizer.from_file(path), "tokenizer.json"
    missing = [s for s in SPECIALS if raw.token_to_id(s) is None]
    if missing:
        raise SystemExit(f"{path}: the vocabulary lacks the special tokens {missing}")
    raw.save(str(out / "tokenizer.json"))
    tokens = vocab_tokens(raw.get_vocab())
    (out / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    names = {f"{k}_token": v for k, v in zip(("pad", "unk", "cls", "sep", "mask"), SPECIALS)}
    hf = PreTrainedTokenizerFast(tokenizer_object=raw, **names)
    info = dict(source=source, path=path, vocab_size=len(tokens), vocab_sha256=vocab_sha(tokens))
    return hf, info


def vocab_tokens(vocab: dict[str, int]) -> list[str]:
    """The tokens in id order (ids must be 0..V-1)."""
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise SystemExit("the tokenizer's ids are not 0..V-1")
    return tokens


def vocab_sha(tokens: Sequence[str]) -> str:
    """sha256 of the tokens joined by newlines, in id order (our side: `WordPiece.tokens`)."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def encode(hf, lines: list[str], max_len: int) -> list[list[int]]:
    """[CLS] ids [SEP] of each line, cut to `max_len` tokens in all."""
    cls, sep = hf.cls_token_id, hf.sep_token_id
    ids = hf(lines, add_special_tokens=False)["input_ids"]
    return [[cls, *row[: max_len - 2], sep] for row in ids]


# ------------------------------------------------------------------------------- batching
def batches(seqs: list[list[int]], max_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices of `seqs` in length-bucketed batches of at most `max_tokens` padded positions
    (a longer sequence alone), in random order."""
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), rng.random()))
    out, chunk, longest = [], [], 0
    for i in order:
        size = len(seqs[i])
        if chunk and max(longest, size) * (len(chunk) + 1) > max_tokens:
            out.append(chunk)
            chunk, longest = [], 0
        chunk.append(i)
        longest = max(longest, size)
    if chunk:
        out.append(chunk)
    rng.shuffle(out)
    return out


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), value, dtype=torch.long)
    for r, ids in enumerate(rows):
        out[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def _collator(hf, mlm_probability: float, seed: int):
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(
        hf, mlm=True, mlm_probability=mlm_probability, mask_replace_prob=0.8,
        random_replace_prob=0.1, seed=seed, return_tensors="pt",
    )  # fmt: skip


def _examples(seqs: list[list[int]], idx: list[int], specials: frozenset[int]) -> list[dict]:
    return [
        {"input_ids": seqs[i], "special_tokens_mask": [int(t in specials) for t in seqs[i]]}
        for i in idx
    ]


# ------------------------------------------------------------------------------- validation
def mask_validation(hf, seqs: list[list[int]], seed: int, mlm_probability: float):
    """(inputs, labels): the collator's masking of all `seqs` in one batch, unpadded; random
    replacements that landed on a special other than [MASK] redrawn among non-specials."""
    specials = frozenset(hf.all_special_ids)
    batch = _collator(hf, mlm_probability, seed)(_examples(seqs, list(range(len(seqs))), specials))
    x, y = batch["input_ids"], batch["labels"]  # (B, T)
    bad = (y != IGNORE) & torch.isin(x, torch.tensor(sorted(specials - {hf.mask_token_id})))
    pool = torch.tensor([i for i in range(len(hf)) if i not in specials])
    g = torch.Generator().manual_seed(seed + 1)
    x[bad] = pool[torch.randint(len(pool), (int(bad.sum()),), generator=g)]
    n = [len(s) for s in seqs]
    return [x[r, : n[r]].tolist() for r in range(len(seqs))], [
        y[r, : n[r]].tolist() for r in range(len(seqs))
    ]


def write_masked_val(path: Path, inputs, labels, meta: dict) -> None:
    payload = {"format": MASKED_VAL_FORMAT, "version": MASKED_VAL_VERSION, **meta}
    payload.update(n_sentences=len(inputs), input_ids=inputs, labels=labels)
    path.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")


def read_masked_val(path: str, vocab_sha256: str) -> tuple[list, list, dict]:
    with open(path, encoding="utf-8") as f:
        payload = json.load(f)
    if payload.get("format") != MASKED_VAL_FORMAT or payload.get("version") != MASKED_VAL_VERSION:
        raise SystemExit(f"{path}: not a masked validation set (format/version)")
    if payload.get("vocab_sha256") != vocab_sha256:
        raise SystemExit(f"{path}: masked with another vocabulary (vocab_sha256 differs)")
    inputs, labels = payload.pop("input_ids"), payload.pop("labels")
    if len(inputs) != len(labels) or any(map(lambda a, b: len(a) != len(b), inputs, labels)):
        raise SystemExit(f"{path}: input_ids and labels differ in shape")
    return inputs, labels, payload


def most_frequent_token(seqs: list[list[int]], special_ids) -> int:
    """The most frequent non-special id of `seqs` (the smallest id among equals)."""
    counts = Counter(t for s in seqs for t in s if t not in special_ids)
    if not counts:
        raise SystemExit("no non-special token in the training sentences")
    return max(counts.items(), key=lambda kv: (kv[1], -kv[0]))[0]


def baseline_accuracy(labels: list[list[int]], token: int) -> tuple[int, int]:
    """(positions whose label is `token`, chosen positions): predicting `token` everywhere."""
    chosen = [t for row in labels for t in row if t != IGNORE]
    return sum(t == token for t in chosen), len(chosen)


@torch.no_grad()
def evaluate(model, inputs, labels, pad_id: int, device, batch_size: int = 64) -> dict:
    """Masked-token accuracy, mean CE and perplexity over the chosen positions (float32)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    nll, correct, total = 0.0, 0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x = _pad([inputs[i] for i in idx], pad_id).to(device)  # (B, T)
        y = _pad([labels[i] for i in idx], IGNORE).to(device)
        m = _pad([[1] * len(inputs[i]) for i in idx], 0).to(device)
        logits = model(input_ids=x, attention_mask=m).logits.float()  # (B, T, V)
        keep = y != IGNORE
        nll += F.cross_entropy(logits[keep], y[keep], reduction="sum").item()
        correct += int((logits[keep].argmax(-1) == y[keep]).sum())
        total += int(keep.sum())
    model.train(was_training)
    mean = nll / max(total, 1)
    return dict(accuracy=correct / max(total, 1), nll=mean, ppl=math.exp(mean), masked=total)


# ------------------------------------------------------------------------------- training
def build_model(vocab: int, pad_id: int, args: argparse.Namespace):
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(
        vocab_size=vocab, hidden_size=args.d_model, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=args.d_ff,
        max_position_embeddings=args.max_len, hidden_act="gelu", type_vocab_size=2,
        hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout,
        layer_norm_eps=1e-12, initializer_range=0.02, pad_token_id=pad_id,
    )  # fmt: skip
    return BertForMaskedLM(cfg)


def _rate(elapsed: float, budget: float, peak: float, warmup_frac: float) -> float:
    p = min(elapsed / budget, 1.0)
    return peak * (p / warmup_frac if p < warmup_frac else (1 - p) / (1 - warmup_frac))


def _optimizer(model, args: argparse.Namespace) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    wd = args.weight_decay
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=0.0, betas=(0.9, 0.999), eps=1e-6)


def train(model, hf, seqs, val, args, device) -> dict:
    """Train for `args.budget_min` minutes of loop time; the counters and the eval history."""
    opt, collate = _optimizer(model, args), _collator(hf, args.mlm_probability, args.seed)
    specials = frozenset(hf.all_special_ids)
    rng, budget = random.Random(args.seed), 60.0 * args.budget_min
    clock, step, epoch, tokens, masked, history = 0.0, 0, 0, 0, 0, []
    win_loss, win_n, next_eval = 0.0, 0, 60.0 * args.eval_every_min or math.inf
    cpu0, wall0 = time.process_time(), time.perf_counter()
    model.train()
    while clock < budget:
        epoch += 1
        t0 = time.perf_counter()
        chunks = batches(seqs, args.max_tokens, rng)
        clock += time.perf_counter() - t0
        for chunk in chunks:
            if clock >= budget:
                break
            t0 = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = _rate(clock, budget, args.peak, args.warmup_frac)
            batch = collate(_examples(seqs, chunk, specials))
            x, m = batch["input_ids"].to(device), batch["attention_mask"].to(device)  # (B, T)
            y = batch["labels"].to(device)
            n = int(y.ne(IGNORE).sum())
            if n:
                with torch.autocast(device.type, torch.bfloat16, enabled=args.amp == "bf16"):
                    logits = model(input_ids=x, attention_mask=m).logits  # (B, T, V)
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                opt.step()
                win_loss, win_n = win_loss + loss.item() * n, win_n + n
                step, tokens, masked = step + 1, tokens + int(m.sum()), masked + n
            clock += time.perf_counter() - t0
            if step and step % args.log_every == 0 and n:
                lr = opt.param_groups[0]["lr"]
                print(f"step {step} {clock / 60:.2f} min lr {lr:.2e} loss {win_loss / win_n:.3f}"
                      f" {tokens / clock:.0f} tok/s", flush=True)  # fmt: skip
                win_loss, win_n = 0.0, 0
            if clock >= next_eval:
                score = evaluate(model, *val, hf.pad_token_id, device)
                history.append(dict(step=step, minutes=round(clock / 60, 3), **score))
                print(f"  eval step {step}: acc {score['accuracy']:.4f} ppl {score['ppl']:.2f}")
                next_eval += 60.0 * args.eval_every_min
    wall = time.perf_counter() - wall0
    return dict(seconds=clock, steps=step, epochs=epoch, tokens=tokens, masked=masked,
                history=history, cpu_util=(time.process_time() - cpu0) / wall)  # fmt: skip


def _machine(device) -> dict:
    import tokenizers
    import transformers

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device.type == "cuda":
        cpu += f" + {torch.cuda.get_device_name(device)}"
    return dict(cpu=cpu, cores=os.cpu_count(), threads=torch.get_num_threads(),
                device=str(device), python=platform.python_version(), torch=torch.__version__,
                transformers=transformers.__version__, tokenizers=tokenizers.__version__,
                load_avg_start=os.getloadavg()[0])  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = _machine(device)
    train_lines = _lines("train", args.data_dir, args.limit_train)
    val_lines = _lines("val", args.data_dir, args.limit_val)
    hf, tok_info = load_tokenizer(args.tokenizer, out, train_lines, args.vocab, args.cased)
    seqs = encode(hf, train_lines, args.max_len)
    specials = frozenset(hf.all_special_ids)
    if args.masked_val:
        inputs, labels, meta = read_masked_val(args.masked_val, tok_info["vocab_sha256"])
        masked_path = args.masked_val
    else:
        inputs, labels = mask_validation(hf, encode(hf, val_lines, args.max_len),
                                         args.val_seed, args.mlm_probability)  # fmt: skip
        ids = {f"{k}_id": getattr(hf, f"{k}_token_id") for k in ("pad", "mask", "cls", "sep")}
        meta = dict(vocab_size=len(hf), vocab_sha256=tok_info["vocab_sha256"], **ids,
                    seed=args.val_seed, mlm_probability=args.mlm_probability,
                    split="val")  # fmt: skip
        masked_path = str(out / "masked_val.json")
        write_masked_val(Path(masked_path), inputs, labels, meta)
    top = most_frequent_token(seqs, specials)
    base_hits, base_n = baseline_accuracy(labels, top)
    model = build_model(len(hf), hf.pad_token_id, args).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"BertForMaskedLM {n_params / 1e6:.2f}M parameters, vocab {len(hf)}, "
          f"{len(seqs)} train / {len(inputs)} val sentences, {base_n} masked val positions",
          flush=True)  # fmt: skip
    counts = train(model, hf, seqs, (inputs, labels), args, device)
    score = evaluate(model, inputs, labels, hf.pad_token_id, device)
    if not args.no_save:
        model.save_pretrained(out / "model")
    machine["load_avg_end"] = os.getloadavg()[0]
    machine["cpu_util"] = round(counts["cpu_util"], 2)  # process CPU s / wall s; ~threads = ours
    results = dict(
        peer="transformers.BertForMaskedLM, random init", machine=machine,
        precision="bf16 autocast" if args.amp == "bf16" else "fp32",
        minutes=counts["seconds"] / 60, budget_min=args.budget_min, steps=counts["steps"],
        epochs=counts["epochs"], tokens_seen=counts["tokens"],
        masked_tokens_seen=counts["masked"], tokens_per_s=counts["tokens"] / counts["seconds"],
        val_accuracy=score["accuracy"], val_ppl=score["ppl"], val_nll=score["nll"],
        val_masked=score["masked"], baseline_accuracy=base_hits / max(base_n, 1),
        baseline_token=hf.convert_ids_to_tokens(top), baseline_token_id=top,
        params=n_params, train_sentences=len(seqs), val_sentences=len(inputs),
        tokenizer=tok_info, masked_val=masked_path, masked_val_seed=meta.get("seed"),
        model=dict(d_model=args.d_model, layers=args.layers, heads=args.heads, d_ff=args.d_ff,
                   max_len=args.max_len, dropout=args.dropout),
        history=counts["history"], args=vars(args),
    )  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"{results['precision']}, {results['minutes']:.2f} min of training: {counts['steps']} "
          f"steps, {counts['tokens']} tokens ({results['tokens_per_s']:.0f} tok/s); val masked "
          f"accuracy {score['accuracy']:.4f}, ppl {score['ppl']:.2f}; most-frequent-token "
          f"baseline {results['baseline_accuracy']:.4f} ({results['baseline_token']!r}); "
          f"load {machine['load_avg_start']:.1f}->{machine['load_avg_end']:.1f}",
          flush=True)  # fmt: skip
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir", default=None, help="holds multi30k/ (or is it)")
    p.add_argument("--budget-min", type=float, default=20.0, help="training loop minutes")
    p.add_argument("--tokenizer", help="tokenizer.json, our WordPiece JSON or vocab.txt")
    p.add_argument("--vocab", type=int, default=8000, help="when training our WordPiece")
    p.add_argument("--cased", action="store_true", help="no lowercasing / accent stripping")
    p.add_argument("--masked-val", default=None, help="a masked_val.json to score on")
    for name, value in (("d-model", 256), ("layers", 4), ("heads", 4), ("d-ff", 1024)):
        p.add_argument(f"--{name}", type=int, default=value)
    p.add_argument("--max-len", type=int, default=128, help="positions (and sentence cut)")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-tokens", type=int, default=4096, help="padded positions a batch")
    p.add_argument("--mlm-probability", type=float, default=0.15)
    p.add_argument("--peak", type=float, default=5e-4)
    p.add_argument("--warmup-frac", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--amp", choices=["off", "bf16"], default="off")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--val-seed", type=int, default=1234)
    p.add_argument("--eval-every-min", type=float, default=5.0, help="0: only at the end")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--limit-train", type=int, default=0, help="first N train lines (smoke)")
    p.add_argument("--limit-val", type=int, default=0, help="first N val lines (smoke)")
    p.add_argument("--no-save", action="store_true", help="do not save the model")
    args = p.parse_args(argv)
    if not 0 < args.warmup_frac < 1:
        p.error(f"--warmup-frac must be in (0, 1), got {args.warmup_frac}")
    if not args.budget_min > 0:
        p.error(f"--budget-min must be > 0, got {args.budget_min}")
    if args.max_len < 3 or args.max_tokens < args.max_len:
        p.error("need --max-len >= 3 and --max-tokens >= --max-len")
    return args


if __name__ == "__main__":
    run(parse_args())
