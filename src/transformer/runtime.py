"""Where bf16 runs in hardware, and what `train.amp` means on a device. (`tune_malloc`, the
allocator setting, is in `transformer.fast.malloc`.)"""

from __future__ import annotations

import torch


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


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu' / 'cuda[:N]' as given. Raises
    ValueError for a name torch does not know or a CUDA device that is not there (the message
    continues a sentence that starts with the name: "'cuda' but no CUDA device ...")."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError("is an unknown device (use 'auto', 'cpu' or 'cuda')") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("but no CUDA device is available")
    return device
