"""Errors of a training run, in a module of their own so that the loop (`trainer`), its step
(`step`) and the run set-up (`run`) raise the same classes without importing one another."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """The run cannot go on (the loss diverged; `RunDirError`: the run directory does not fit)."""


class RunDirError(TrainingError):
    """The run directory does not fit the request (a usage error: nothing was started)."""
