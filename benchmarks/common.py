"""What the benchmarks and `scripts/micro_bench.py` / `scripts/fast_guard_bench.py` share: one
timing helper, one peak-memory helper, and one definition of the Multi30k-sized model and of
its Hugging Face MarianMT twin.

Only `transformer`'s public API is used (and imported lazily, inside the model helpers), so
the scripts can time an older checkout of the library with these definitions.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

# The Multi30k-sized model (issue 6): d_model 256, 4 heads, 3+3 layers, d_ff 1024, shared
# (tied) embeddings; ~7.6M parameters at a vocabulary of 8,000.
MULTI30K_SIZE = dict(d_model=256, n_heads=4, d_ff=1024, n_encoder_layers=3, n_decoder_layers=3)
MULTI30K_VOCAB = 8188  # a joint BPE of 8,000 merges on Multi30k de+en, with the specials
try:
    from transformer.tokenizers.specials import BOS_ID as BOS
    from transformer.tokenizers.specials import EOS_ID as EOS
    from transformer.tokenizers.specials import PAD_ID as PAD
except ImportError:  # an older checkout timed by scripts/fast_guard_bench.py: the same ids
    PAD, BOS, EOS = 0, 1, 2


# ---- timing ------------------------------------------------------------------------------


def seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of `fn`."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 0) -> float:
    """Median wall-clock seconds of `repeats` calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(seconds(fn) for _ in range(repeats))


def alternate(a: Callable, b: Callable, rounds: int, calls: int) -> tuple[float, float]:
    """Median ms per call of a and b, timed in alternating rounds (same load for both), after
    three untimed calls of each."""
    times_a, times_b = [], []
    for fn in (a, b):
        for _ in range(3):
            fn()
    for _ in range(rounds):
        for fn, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(times_a), statistics.median(times_b)


# ---- peak memory -------------------------------------------------------------------------

_LIBC = ctypes.CDLL("libc.so.6") if platform.system() == "Linux" else None


def _status_kib(field: str) -> int | None:
    """A memory field of /proc/self/status in KiB (None where unavailable)."""
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def peak_rss_growth_mib(fn: Callable[[], object], fixed_mmap: bool = False) -> float | None:
    """Growth of the process's peak resident set (Linux VmHWM, reset through
    /proc/self/clear_refs) while `fn` runs, in MiB; None where not measurable. It sees C++
    and Rust allocations too. `fixed_mmap`: every large block is mmap'ed and unmapped when
    freed (a fixed glibc mmap threshold), so the resident set follows the live tensors; glibc's
    sliding threshold would let a block freed by an earlier call be reused silently, hiding
    part of this call's peak. It stays set for the process."""
    try:
        if fixed_mmap:
            _LIBC.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
            _LIBC.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except (OSError, AttributeError):
        return None
    before = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    return None if before is None or peak is None else (peak - before) / 1024


# ---- the Multi30k-sized model and its MarianMT twin --------------------------------------


def multi30k_config(vocab: int = MULTI30K_VOCAB, **overrides: Any):
    """The Multi30k-sized `ModelConfig` (the paper's base with `MULTI30K_SIZE`, shared
    embeddings, dropout 0.1) at vocabulary `vocab`; `overrides` replace any field."""
    from transformer.config import ModelConfig

    fields = dict(MULTI30K_SIZE, src_vocab_size=vocab, tgt_vocab_size=vocab, pad_id=PAD)
    return ModelConfig.preset("base", **{**fields, **overrides})


def marian_config(vocab: int = MULTI30K_VOCAB, **overrides: Any):
    """Hugging Face `MarianConfig` of the same size as `multi30k_config(vocab)`: the peer of
    the decoding and training-step benchmarks (`pip install -e .[bench]`)."""
    from transformers import MarianConfig

    size = MULTI30K_SIZE
    fields = dict(
        vocab_size=vocab,
        d_model=size["d_model"],
        encoder_layers=size["n_encoder_layers"],
        decoder_layers=size["n_decoder_layers"],
        encoder_attention_heads=size["n_heads"],
        decoder_attention_heads=size["n_heads"],
        encoder_ffn_dim=size["d_ff"],
        decoder_ffn_dim=size["d_ff"],
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=BOS,
    )
    return MarianConfig(**{**fields, **overrides})
