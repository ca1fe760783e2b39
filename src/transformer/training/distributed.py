"""Data-parallel training on PyTorch's own engine: `torchrun` starts the processes,
`torch.distributed` connects them, `DistributedDataParallel` all-reduces the gradients.

    torchrun --nproc_per_node 2 -m transformer train CONFIG --out RUN_DIR

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and the rendezvous address) in each process's
environment; `World.from_env()` reads them, and a plain `transformer train` is a world of one.
The split of the work:

- Every rank walks the same deterministic batch plan (the seed and the epoch fix it). One
  optimizer step takes `train.accum_steps` consecutive batches of the plan; rank r computes
  batches r, r + N, r + 2N, ... of them (`share`), so the ranks' batches are disjoint and
  together cover every batch once per epoch. The tokens per update are what the config says
  whatever N is: N processes with accum_steps / N batches each, or one with all of them.
- Each rank divides its summed loss by the token count of the *whole* step (known to every
  rank, since they all see the plan), and `DistributedDataParallel` averages the gradients
  over the N ranks; multiplying the loss by N turns that average into the sum, so the update
  equals one process's update on all the step's batches, up to float rounding.
- Rank 0 alone validates and writes checkpoints, logs, TensorBoard and the progress bar; the
  others follow its decisions (stop at the time budget or a signal, the fitted step count),
  which it broadcasts (`broadcast`).
- A rank that dies: torchrun's agent stops the others and the job exits non-zero; without
  torchrun, the survivors' next collective fails after `timeout`. `--resume` continues from
  the last checkpoint, with any number of ranks (the position in the plan is global).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")

# What a collective that lost its peers says (gloo: "Connection reset by peer", "Connection
# closed by peer", timeouts; NCCL: its own name).
_PEER = re.compile(r"gloo|nccl|connection (reset|closed|refused)|timed out|timeout", re.I)


class DistributedError(RuntimeError):
    """The requested split of the work does not fit (a usage error: nothing was started)."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Self:
        """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them; a world of one without."""
        try:
            size = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as err:
            raise DistributedError(f"bad torchrun environment: {err}") from None
        if size < 1 or not 0 <= rank < size:
            raise DistributedError(f"RANK={rank} does not fit WORLD_SIZE={size}")
        return cls(rank, size, local)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def start(world: World, device: torch.device, timeout_s: float = 1800.0) -> bool:
    """Join the process group (gloo on the CPU, nccl on CUDA); a no-op for a world of one or
    a group already joined. True when it joined (then `stop` leaves it). `timeout_s` bounds
    how long a collective waits for a rank that has stopped answering (a rank that died
    closes its connections: the others' next collective fails at once)."""
    if not world.distributed or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(
        backend,
        rank=world.rank,
        world_size=world.size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    return True


def stop() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def batches_per_rank(accum_steps: int, world: World) -> int:
    """How many of a step's `accum_steps` batches each rank computes; they must divide."""
    if accum_steps % world.size:
        raise DistributedError(
            f"train.accum_steps ({accum_steps}) must be a multiple of the number of "
            f"processes ({world.size}): each rank computes accum_steps / processes batches of "
            "every step, so that the tokens per update stay what the config says"
        )
    return accum_steps // world.size


def share(batches: Sequence[T], world: World) -> list[T]:
    """This rank's batches of one step: every world.size-th, starting at its rank."""
    return list(batches[world.rank :: world.size])


def broadcast(value: Any, world: World) -> Any:
    """Rank 0's `value` (any picklable object) on every rank."""
    if not world.distributed:
        return value
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def lead(world: World, work: Callable[[], T]) -> T:
    """Rank 0 runs `work` (which may write files); its result, or the exception it raised, is
    broadcast, so every rank returns the same value or raises the same error (no rank is left
    waiting at a barrier when rank 0 fails). Both must pickle."""
    if not world.distributed:
        return work()
    outcome: tuple[bool, Any] = (True, None)
    if world.is_main:
        try:
            outcome = (True, work())
        except Exception as err:  # handed to every rank, raised there and here
            outcome = (False, err)
    ok, value = broadcast(outcome, world)
    if not ok:
        raise value
    return value


def barrier(world: World) -> None:
    """Wait until every rank gets here (a no-op for a world of one)."""
    if world.distributed:
        dist.barrier()


def decide(choice: int, world: World, device: torch.device) -> int:
    """Rank 0's `choice` (a small int: stop or go, and why) on every rank, one tensor broadcast."""
    if not world.distributed:
        return choice
    box = torch.tensor([choice], dtype=torch.int64, device=device)
    dist.broadcast(box, src=0)
    return int(box.item())


def main_clock(
    world: World, device: torch.device, local: Callable[[], float]
) -> Callable[[], float]:
    """The `local` clock as rank 0 reads it, on every rank (one broadcast a call): a loop
    whose condition reads this clock runs as many times on every rank (the trial steps of
    max_steps "auto"), as long as every rank calls it at the same points."""
    if not world.distributed:
        return local

    def clock() -> float:
        box = torch.tensor([local()], dtype=torch.float64, device=device)
        dist.broadcast(box, src=0)
        return float(box.item())

    return clock


def sum_over_ranks(values: Sequence[torch.Tensor], world: World) -> list[float]:
    """The sums over the ranks of a few scalar tensors (one all-reduce), as floats."""
    stacked = torch.stack([v.detach().float().reshape(()) for v in values])
    if world.distributed:
        dist.all_reduce(stacked)
    return stacked.tolist()


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank `rank` > 0's random draws (dropout) at optimizer step `step`: ranks
    draw different masks, and a resumed run draws the same ones (rank 0's generator state is
    the one a checkpoint keeps)."""
    return ((seed * 1_000_003 + rank) * 1_000_003 + step) & 0x7FFF_FFFF_FFFF_FFFF


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """`model` in `DistributedDataParallel` for a world of several; the model itself for one.
    The buffers (sinusoidal tables) are the same on every rank: they are not broadcast again
    at every forward."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else world.local_rank]
    return DistributedDataParallel(
        model, device_ids=ids if device.type == "cuda" else None, forward_sync_buffers=False
    )


def no_sync(net: nn.Module, sync: bool) -> contextlib.AbstractContextManager[Any]:
    """Skip DDP's gradient all-reduce for this backward (the micro-batches of a step but its
    last: their gradients are summed locally and reduced once, with the last)."""
    if sync or not hasattr(net, "no_sync"):
        return contextlib.nullcontext()
    return net.no_sync()


def rank_device(device: torch.device, world: World) -> torch.device:
    """On CUDA each rank uses its own device, cuda:LOCAL_RANK; the CPU is shared."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def restart_count() -> int:
    """How many times torchrun (`--max-restarts`) has restarted the worker group (0 without)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


class NullLog:
    """What the ranks other than 0 write their metrics to: nothing (rank 0 keeps the log)."""

    def write(self, kind: str, step: int, **scalars: Any) -> None:
        pass

    def __enter__(self) -> NullLog:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@contextlib.contextmanager
def peers_lost(world: World, what: Callable[[], str], error: type[Exception]) -> Iterator[None]:
    """Turn a collective that failed because another rank died (its sockets closed, or the
    timeout passed) into `error`, one line naming this rank and `what()` (say, the last
    checkpoint to resume from)."""
    try:
        yield
    except RuntimeError as err:  # gloo's errors inside DDP's backward are plain RuntimeErrors
        if not world.distributed or not (isinstance(err, dist.DistError) or _PEER.search(str(err))):
            raise
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        raise error(
            f"rank {world.rank} of {world.size}: another process stopped answering ({first}); "
            f"the job stops; {what()}"
        ) from err
