"""Training metrics: one JSON object per line in RUN_DIR/log.jsonl, and TensorBoard scalars
in RUN_DIR/tb (`tensorboard --logdir RUN_DIR/tb`).

Each record has `kind` ("data", "train", "val" or "event"), `step`, `time` (wall clock, Unix
seconds, for durations) and its scalars, e.g.
{"kind": "train", "step": 100, "loss": 2.31, "ppl": 9.1, "lr": 0.0007, "tokens_per_s": 5100.0,
 "padding": 0.12, ...}; the "data" record (step 0) gives the corpus size, the pairs
skipped (empty / over the word limit / over the token limit) and epoch 0's padding
fraction. On resume from step N, records after N (written by the interrupted run after its
last checkpoint) are dropped, so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from transformer import durable


class MetricsLog:
    """Append-only metrics log (jsonl + optional TensorBoard)."""

    def __init__(self, run_dir: str | os.PathLike[str], resume_step: int = 0, tensorboard=True):
        self.path = Path(run_dir) / "log.jsonl"
        if resume_step and self.path.exists():
            _truncate_after(self.path, resume_step)
        elif not resume_step and self.path.exists():
            self.path.unlink()
        self._fh = self.path.open("a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step + 1)

    def write(self, kind: str, step: int, **scalars: Any) -> None:
        """Record one line; numeric scalars also go to TensorBoard as `kind/name`."""
        record = {"kind": kind, "step": step, **{k: _clean(v) for k, v in scalars.items()}}
        record["time"] = round(time.time(), 3)  # wall clock (Unix seconds): durations, not TB
        self._fh.write(durable.dumps(record, indent=None) + "\n")  # strict JSON
        self._fh.flush()
        if self._tb is not None:
            for name, value in scalars.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so the file stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_log(run_dir: str | os.PathLike[str], kind: str | None = None) -> list[dict[str, Any]]:
    """The records of RUN_DIR/log.jsonl (optionally of one kind)."""
    path = Path(run_dir) / "log.jsonl"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if kind is None or record.get("kind") == kind:
                out.append(record)
    return out


def _truncate_after(path: Path, step: int) -> None:
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
    durable.write_text(path, "".join(k + "\n" for k in kept))
