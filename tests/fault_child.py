"""Child process of tests/test_faults.py (not a test module).

    python tests/fault_child.py CONFIG.toml RUN_DIR KILL_AT

Trains RUN_DIR from CONFIG, resuming when it holds a checkpoint, and SIGKILLs itself at the
KILL_AT-th step of a durable write (`transformer.durable.fault_hook`; 0 = never). Prints the
number of write steps it passed ("points") when it is not killed.
"""

from __future__ import annotations

import os
import signal
import sys

from transformer import durable
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.run import train


def main() -> None:
    config, run_dir, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    count = 0

    def hook(label: str) -> None:
        nonlocal count
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    durable.fault_hook = hook
    run = RunConfig.from_toml(config)
    train(run, run_dir, resume=bool(ckpt.step_dirs(run_dir)), tensorboard=False)
    print(f"points {count}")


if __name__ == "__main__":
    main()
