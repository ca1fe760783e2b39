"""A process-wide allocator setting that makes CPU training and decoding faster (glibc only)."""

from __future__ import annotations

import ctypes
import ctypes.util


def tune_malloc() -> bool:
    """Serve large tensors from the reused heap instead of fresh mmap pages (glibc only).

    glibc gives each allocation above its mmap threshold (at most 32 MiB by its own dynamic
    rule) fresh pages that the kernel must fault in and zero, every step: the (B·T, V) logits
    and their gradients are such tensors. Raising the mmap and trim thresholds keeps them in
    the heap (faster training steps and decoding: docs/benchmarks.md); it applies to the whole
    process. Returns whether it was set.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h> parameter numbers
    # Some glibc versions cap the mmap threshold at 32 MiB: fall back to the cap.
    mmap_ok = libc.mallopt(m_mmap_threshold, 1 << 30) or libc.mallopt(m_mmap_threshold, 1 << 25)
    return bool(mmap_ok and libc.mallopt(m_trim_threshold, (1 << 31) - 1))
