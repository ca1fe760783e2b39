"""Child of tests/test_training_distributed.py (not a test module), started by torchrun:

    torchrun ... tests/ddp_child.py DIE_RANK DIE_STEP train CONFIG --out RUN_DIR ...

The rank DIE_RANK exits at once (`os._exit(3)`: no cleanup, no message, as a crashed or
killed process) when it is about to compute optimizer step DIE_STEP, on torchrun's first
attempt only (TORCHELASTIC_RESTART_COUNT 0, so that a `--max-restarts` restart goes through);
otherwise the `transformer` command runs with the remaining arguments.
"""

from __future__ import annotations

import os
import sys

from transformer.cli import main
from transformer.training.trainer import Trainer


def die_at(rank: int, step: int) -> None:
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if not first_attempt or int(os.environ.get("RANK", "0")) != rank:
        return
    train_step = Trainer.train_step

    def dying_step(self):
        if self.step + 1 == step:
            os._exit(3)
        return train_step(self)

    Trainer.train_step = dying_step


if __name__ == "__main__":
    die_at(int(sys.argv[1]), int(sys.argv[2]))
    raise SystemExit(main(sys.argv[3:]))
