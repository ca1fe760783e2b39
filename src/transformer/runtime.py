"""Process-wide settings that make CPU training faster (used by the trainer and benchmarks)."""

from __future__ import annotations

import ctypes
import ctypes.util

import torch


def tune_malloc() -> bool:
    """Serve large tensors from the reused heap instead of fresh mmap pages (glibc only).

    glibc gives each allocation above its mmap threshold (at most 32 MiB by its own dynamic
    rule) fresh pages that the kernel must fault in and zero, every step: the (B·T, V) logits
    and their gradients are such tensors. Raising the mmap and trim thresholds keeps them in
    the heap (about 15% faster training steps at the Multi30k size on 2 cores); it applies to the
    whole process. Returns whether it was set.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h> parameter numbers
    # Some glibc versions cap the mmap threshold at 32 MiB: fall back to the cap.
    mmap_ok = libc.mallopt(m_mmap_threshold, 1 << 30) or libc.mallopt(m_mmap_threshold, 1 << 25)
    return bool(mmap_ok and libc.mallopt(m_trim_threshold, (1 << 31) - 1))


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 in hardware: CUDA with bf16 support, or a CPU with
    AVX512-BF16 or AMX tiles. Elsewhere bf16 autocast is emulated by oneDNN and far slower
    than float32 (about 25× a Multi30k training step on an AVX2 AMD EPYC, docs/benchmarks.md).
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu, torch >= 2.3
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def use_bf16_autocast(amp: str, device: torch.device) -> bool:
    """Resolve `train.amp` for `device`: "bf16" always, "off" never, "native" where the device
    has bf16 in hardware (`native_bf16`), "auto" on CUDA only."""
    if amp == "bf16":
        return True
    if amp == "native":
        return native_bf16(device)
    return amp == "auto" and device.type == "cuda"
