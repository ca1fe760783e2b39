"""Adam with the paper's hyper-parameters (Vaswani et al., 2017, Section 5.3):
β1 = 0.9, β2 = 0.98, ε = 1e-9. The learning rate is set by the trainer before every step
from `schedule.noam_lr`, so the optimizer is created with lr = 0.
"""

from __future__ import annotations

import torch
from torch import nn

PAPER_BETAS = (0.9, 0.98)
PAPER_EPS = 1e-9


def build_adam(
    model: nn.Module,
    betas: tuple[float, float] = PAPER_BETAS,
    eps: float = PAPER_EPS,
    weight_decay: float = 0.0,
) -> torch.optim.Adam:
    """Adam over the model's trainable parameters (tied weights appear once).

    Uses the fused CUDA kernel when the parameters live on a GPU, the foreach path on CPU.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    fused = params[0].is_cuda
    return torch.optim.Adam(
        params,
        lr=0.0,
        betas=tuple(betas),
        eps=eps,
        weight_decay=weight_decay,
        fused=fused or None,
        foreach=None if fused else True,  # torch picks the per-tensor loop on CPU otherwise
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
