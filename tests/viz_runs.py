"""Run directories for the viz and serve tests, built in well under a second: a BPE trained on
a few sentences, a tiny Transformer with seeded random weights, and a synthetic log.jsonl.
(Random weights translate into nonsense, but deterministically: what these tests check is
that figures, API and page show exactly what the model computes.)"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from transformer.tokenizers import BPE
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig

SENTENCES = [
    "Ein Hund läuft im Schnee.",
    "A dog runs in the snow.",
    "Zwei Männer spielen Fußball auf einer Wiese.",
    "Two men play soccer on a meadow.",
    "Eine Frau liest ein Buch im Park.",
    "A woman reads a book in the park.",
    "Ein kleines Mädchen spielt mit einem roten Ball.",
    "A little girl plays with a red ball.",
]


def model_section(vocab: int, layers: int = 2, heads: int = 2, max_len: int = 16) -> dict:
    return {
        "preset": "tiny",
        "src_vocab_size": vocab,
        "tgt_vocab_size": vocab,
        "d_model": 24,
        "n_heads": heads,
        "d_ff": 48,
        "n_encoder_layers": layers,
        "n_decoder_layers": layers,
        "dropout": 0.0,
        "share_embeddings": True,
        "max_len": max_len,
    }


def make_run(path: Path, seed: int = 0, layers: int = 2, heads: int = 2, steps: int = 0) -> Path:
    """A translation run directory at `path` with random weights (seeded); with `steps` > 0,
    also a log.jsonl of that many synthetic train/val records."""
    from transformer.models import Transformer

    path.mkdir(parents=True, exist_ok=True)
    bpe = BPE.train(SENTENCES * 3, num_merges=60)
    bpe.save(path / "tokenizer.json")
    values = {
        "model": model_section(bpe.vocab_size, layers, heads),
        "data": {"task": "multi30k", "max_tokens": 256},
        "train": {"max_steps": max(steps, 10), "warmup": 4, "progress": False, "device": "cpu"},
    }
    run = RunConfig.from_dict(values)
    (path / "config.toml").write_text(run.to_toml(), encoding="utf-8")
    torch.manual_seed(seed)
    model = Transformer(run.model)
    ckpt.save_weights(model.state_dict(), path / "model.safetensors")
    if steps:
        write_log(path, steps)
    return path


def write_log(path: Path, steps: int, start: float = 1.7e9) -> None:
    """log.jsonl as `training.logging.MetricsLog` writes it: data, train every step, val
    every 2 steps, with a wall clock 30 s per step."""
    records = [{"kind": "data", "step": 0, "pairs": 8, "time": start}]
    for step in range(1, steps + 1):
        loss = 5.0 / step**0.5
        records.append(
            {
                "kind": "train",
                "step": step,
                "lr": 1e-3 * min(step / 4, (4 / step) ** 0.5),
                "loss": loss,
                "nll": loss * 0.9,
                "ppl": float(torch.tensor(loss * 0.9).exp()),
                "tokens_per_s": 1000.0 + step,
                "time": start + 30 * step,
            }
        )
        if step % 2 == 0:
            records.append(
                {
                    "kind": "val",
                    "step": step,
                    "val_loss": loss * 1.1,
                    "val_nll": loss,
                    "val_ppl": float(torch.tensor(loss).exp()),
                    "val_bleu": 2.0 * step,
                    "time": start + 30 * step + 1,
                }
            )
    text = "".join(json.dumps(r) + "\n" for r in records)
    (path / "log.jsonl").write_text(text, encoding="utf-8")
