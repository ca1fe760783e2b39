"""Atomic, durable writes: every file that matters goes through here.

A write goes to a unique temporary name in the destination's directory
(`.tmp-<pid>-<random>-<name>`), is flushed and fsync'ed, renamed over the destination, and
the directory is fsync'ed, so after a kill, a power loss or an OS crash the destination holds
either its old contents or the new ones, never a torn mix. A failed write (disk full,
permission denied) removes its temporary and raises `OSError` naming the destination.

    write_bytes(path, data); write_text(path, text); write_json(path, value)
    with atomic_file(path) as f: np.savez(f, ...)        # a writer that wants a file object
    with atomic_dir(path) as tmp: ...write files in tmp  # a whole directory (a checkpoint)

`atomic_dir` replaces an existing directory without a moment where neither the old nor the
new one exists on disk: Linux swaps the two in one `renameat2(RENAME_EXCHANGE)`; elsewhere the
old one is first renamed to `.old-<name>`, which `clean_stale` puts back if a crash came
between the two renames. `clean_stale(directory)` (called when a run starts) removes the
temporaries of writers that no longer run.

`fault_hook`, when set (tests only), is called with a label before every step of a write:
the fault-injection suite kills the process there (`tests/test_faults.py`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
CHUNK = 1 << 16

fault_hook: Callable[[str], None] | None = None


def _point(label: str) -> None:
    if fault_hook is not None:
        fault_hook(label)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


def _named(err: OSError, path: Path, tmp: Path | None = None) -> OSError:
    """The same error, naming the destination (not the temporary)."""
    name = str(path)
    if tmp is not None and err.filename and str(err.filename).startswith(str(tmp) + os.sep):
        name = str(path) + str(err.filename)[len(str(tmp)) :]
    return type(err)(err.errno, err.strerror or str(err), name)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in `directory` durable (a no-op where unsupported)."""
    _point("fsync-dir")
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some file systems cannot fsync a directory
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


class _HookedFile:
    """A binary file whose writes pass the fault hook every CHUNK bytes."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), CHUNK):
            _point("write")
            self._fh.write(view[start : start + CHUNK])
        return len(view)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file object; on a clean exit its bytes replace `path` atomically and durably."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        _point("open")
        with open(tmp, "xb") as raw:
            yield _HookedFile(raw) if fault_hook is not None else raw
            raw.flush()
            _point("fsync")
            os.fsync(raw.fileno())
        _point("rename")
        os.replace(tmp, path)
    except OSError as err:
        raise _named(err, path) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float written as a string ("nan", "inf"): JSON has none."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = 1) -> str:
    """Strict JSON text (never a bare NaN/Infinity)."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    write_text(path, dumps(value) + "\n")


def copy_file(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Copy `src` to `dest` atomically and durably."""
    with open(src, "rb") as fin, atomic_file(dest) as fout:
        shutil.copyfileobj(fin, fout, CHUNK)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _sync_tree(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_file():
            fd = os.open(child, os.O_RDONLY)
            try:
                _point("fsync")
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(directory)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh temporary directory; on a clean exit it replaces `path` atomically and durably
    (its files fsync'ed first). An existing `path` is never missing on disk meanwhile."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        _point("mkdir")
        tmp.mkdir()
        yield tmp
        _sync_tree(tmp)
        _point("rename")
        if not path.exists():
            os.rename(tmp, path)
        elif not _exchange(tmp, path):
            old = path.with_name(OLD_PREFIX + path.name)
            shutil.rmtree(old, ignore_errors=True)
            os.rename(path, old)
            _point("rename")
            os.rename(tmp, path)
            fsync_dir(path.parent)
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        raise _named(err, path, tmp) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the new temporary, or the old directory
    fsync_dir(path.parent)


def _owner_alive(name: str) -> bool:
    """Whether the process that made temporary `name` (`.tmp-<pid>-...`) still runs."""
    pid_text = name[len(PREFIX) :].split("-", 1)[0]
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries of dead writers in `directory`; put back an `.old-` directory
    whose replacement never arrived. Returns the paths removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for child in sorted(directory.iterdir()):
        if child.name.startswith(OLD_PREFIX):
            target = child.with_name(child.name[len(OLD_PREFIX) :])
            if not target.exists():
                os.rename(child, target)
                continue
        elif not child.name.startswith(PREFIX) or _owner_alive(child.name):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child)
    if removed:
        fsync_dir(directory)
    return removed
