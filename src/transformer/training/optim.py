"""Adam with the paper's hyper-parameters (Vaswani et al., 2017, Section 5.3):
β1 = 0.9, β2 = 0.98, ε = 1e-9. The learning rate is set by the trainer before every step
from `schedule.noam_lr`, so the optimizer is created with lr = 0.

`build_adamw` is the GPT recipe: AdamW (Loshchilov & Hutter, 2019), whose weight decay is
decoupled from the gradient (p <- p - lr·wd·p, then the Adam step), applied to the weight
matrices of the linear layers only; biases, LayerNorm gains/biases, token embeddings and
learned position tables (and the output layer when it is the tied embedding) are not decayed.
"""

from __future__ import annotations

import torch
from torch import nn

from transformer.training.config import TrainConfig

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


def decay_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed) trainable parameters, each once (tied weights appear once):
    decayed = the `weight` of every `nn.Linear`, unless it is also used elsewhere as an
    embedding (a tied output layer); the rest (biases, norms, embeddings) is not decayed."""
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embedding_like = set()
    for m in model.modules():
        if not isinstance(m, nn.Linear):
            embedding_like.update(id(p) for p in m.parameters(recurse=False))
    decay, no_decay = [], []
    for p in model.parameters():  # unique parameters, in registration order
        if not p.requires_grad:
            continue
        if id(p) in linear and id(p) not in embedding_like:
            decay.append(p)
        else:
            no_decay.append(p)
    return decay, no_decay


def build_adamw(
    model: nn.Module,
    betas: tuple[float, float] = (0.9, 0.99),
    eps: float = 1e-8,
    weight_decay: float = 0.1,
) -> torch.optim.AdamW:
    """AdamW with `weight_decay` on `decay_groups`' first group and 0 on the second; lr = 0
    until the trainer sets it. Fused on a GPU, foreach on the CPU (as `build_adam`)."""
    decay, no_decay = decay_groups(model)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    fused = (decay or no_decay)[0].is_cuda
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=0.0,
        betas=tuple(betas),
        eps=eps,
        fused=fused or None,
        foreach=None if fused else True,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """`train.optimizer`: "adam" (`build_adam`) or "adamw" (`build_adamw`, `train.weight_decay`)."""
    if train.optimizer == "adamw":
        return build_adamw(model, train.betas, train.eps, train.weight_decay)
    return build_adam(model, train.betas, train.eps)
