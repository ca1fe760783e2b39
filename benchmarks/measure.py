"""Measuring helpers of `transformer bench tokenizer`: round-robin medians and peak memory.

Every row is timed `repeats` times, round-robin over the rows of a table (a change in a shared
machine's load hits every row alike), and its memory measured in one extra, untimed run: the
growth of the process's peak resident set (Linux VmHWM, reset through /proc/self/clear_refs),
which sees Rust/C++ allocations too, and for our own rows the Python heap peak (tracemalloc).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import statistics
import sys
import time
from collections.abc import Callable

from benchmarks.common import peak_rss_growth_mib

MB = 1e6


@contextlib.contextmanager
def _quiet_stderr():
    """Silence peers' progress output, including C++ writes to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        old, sys.stderr = sys.stderr, io.StringIO()
        try:
            yield
        finally:
            sys.stderr = old
            os.dup2(saved, 2)
            os.close(saved)


@dataclasses.dataclass
class _Row:
    name: str
    seconds: float
    nbytes: int
    peak: float | None
    note: str = ""

    def cells(self) -> list[str]:
        peak = "n/a" if self.peak is None else f"{self.peak:.0f}"
        rate = f"{self.nbytes / MB / self.seconds:.2f}"
        return [self.name, f"{self.seconds:.3f}", rate, peak, self.note]


def python_heap_peak_mib(fn: Callable[[], object]) -> float:
    """Peak of Python's own allocations (tracemalloc) while `fn` runs, in MiB."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    del result
    return peak


@dataclasses.dataclass
class _Spec:
    """One row to measure: `fn` is timed after `setup` (untimed) in every repeat."""

    name: str
    fn: Callable[[], object]
    setup: Callable[[], object] | None = None
    note: str = ""
    memory: bool = True


def _measure(name, fn, setup=None, note="") -> _Spec:
    return _Spec(name, fn, setup, note)


def _warm(name: str, fn, note: str) -> _Spec:
    return _Spec(name, fn, setup=fn, note=note, memory=False)  # setup fills the cache


def _run_specs(specs: list[_Spec], nbytes: int, repeats: int) -> list[_Row]:
    """Peak memory in one untimed pass, then `repeats` timed rounds, round-robin over the
    rows (so that a change in the machine's load hits every row alike); medians."""
    notes, peaks = {}, {}
    for spec in specs:
        notes[spec.name], peaks[spec.name] = spec.note, None
        if not spec.memory:
            continue
        if spec.setup is not None:
            spec.setup()
        peaks[spec.name] = peak_rss_growth_mib(spec.fn)
        if spec.name.startswith("ours"):  # RSS undercounts reused Python memory
            if spec.setup is not None:
                spec.setup()
            heap = f"Python heap peak {python_heap_peak_mib(spec.fn):.0f} MiB"
            notes[spec.name] = f"{spec.note}; {heap}" if spec.note else heap
    times: dict[str, list[float]] = {spec.name: [] for spec in specs}
    for _ in range(repeats):
        for spec in specs:
            if spec.setup is not None:
                spec.setup()
            start = time.perf_counter()
            spec.fn()
            times[spec.name].append(time.perf_counter() - start)
    return [
        _Row(s.name, statistics.median(times[s.name]), nbytes, peaks[s.name], notes[s.name])
        for s in specs
    ]


def _table(title: str, rows: list[_Row]) -> str:
    head = ["tool", "seconds (median)", "MB/s", "peak RSS growth (MiB)", "note"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines) + "\n"
