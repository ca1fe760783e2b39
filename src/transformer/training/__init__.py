"""Training (Vaswani et al., 2017, Section 5): the loss, the schedule, the optimizer, the loop,
checkpoints that resume bit-exactly, and the copy-task demo.

    from transformer.training import RunConfig, train
    result = train(RunConfig.from_toml("configs/copy-task.toml"), "runs/copy")

- `loss.label_smoothed_cross_entropy`: label smoothing as a pure function (Section 5.4);
- `schedule.noam_lr`: the warm-up / inverse-square-root rate (Section 5.3, equation 3);
- `optim.build_adam`: Adam with β = (0.9, 0.98), ε = 1e-9;
- `checkpoint`: safetensors weights, weights_only training state, atomic writes, `average`;
- `config.RunConfig`: the `[model]`, `[data]`, `[train]` TOML sections;
- `trainer.Trainer` / `run.train`: the loop (accumulation, clipping, bf16 autocast on GPU,
  validation, best + last-K checkpoints, Ctrl-C, NaN stop, exact resume);
- `logging.MetricsLog`: log.jsonl and TensorBoard scalars; `copy_task`: the demo's data.
"""

from transformer.training.config import DataConfig, RunConfig, TrainConfig
from transformer.training.errors import TrainingError
from transformer.training.loss import label_smoothed_cross_entropy
from transformer.training.optim import build_adam
from transformer.training.run import train
from transformer.training.schedule import noam_lr
from transformer.training.trainer import Trainer, TrainResult

__all__ = [
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "build_adam",
    "label_smoothed_cross_entropy",
    "noam_lr",
    "train",
]
