"""Fetch a corpus file from its public origin: urllib, a tqdm progress bar, a sha256 check,
and an atomic, durable write (`transformer.durable`), so an interrupted download never leaves a
truncated file where a loader would take it for the real one.

`TRANSFORMER_OFFLINE=1` (the `--offline` option of the command; the test suite sets it)
forbids downloads: a missing file is then a `DataError` that says where to put it.
`verify_file` re-hashes a file already on disk against its known sha256 (the loaders call it
every time they use a file whose checksum is pinned, before reading it).

Also `data_root()`: where corpora live (an explicit directory, else `TRANSFORMER_DATA`, else
`~/.cache/transformer/data`).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from transformer import durable
from transformer.data.corpus import DataError

ENV_VAR = "TRANSFORMER_DATA"
OFFLINE_VAR = "TRANSFORMER_OFFLINE"
CHUNK = 1 << 16


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory that holds the corpora (`multi30k/`, `tinyshakespeare/`, ...):
    `data_dir` if given, else `$TRANSFORMER_DATA`, else `~/.cache/transformer/data`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "transformer" / "data"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def offline() -> bool:
    """Whether downloads are forbidden (`TRANSFORMER_OFFLINE` set to anything but 0/empty)."""
    return os.environ.get(OFFLINE_VAR, "").strip().lower() not in ("", "0", "false", "no")


def verify_file(path: Path, sha256: str | None) -> Path:
    """`path` after checking its sha256 (when known); a mismatch is a DataError."""
    if sha256 is not None:
        try:
            actual = sha256_file(path)
        except OSError as err:
            raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
        if actual != sha256:
            raise DataError(
                f"{path}: sha256 {actual} differs from the pinned {sha256} (damaged or "
                "another version); delete it to download it again"
            )
    return path


def download(
    url: str, dest: Path, *, sha256: str | None = None, progress: bool = True, timeout: float = 60
) -> Path:
    """Download `url` to `dest` (atomically) and check its sha256 when given.

    Raises `DataError` naming the URL on an HTTP/network error, and naming both digests on
    a checksum mismatch (the partial file is removed in both cases), and when downloads are
    forbidden (`offline()`).
    """
    dest = Path(dest)
    if offline():
        raise DataError(
            f"{dest} is missing and downloads are off ({OFFLINE_VAR}=1 or --offline): "
            f"put the file there (from {url}) or allow downloads"
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {dest.parent} to download {url}: {err}") from None
    with durable.atomic_file(dest) as out:
        actual = _fetch(url, out, progress=progress, timeout=timeout)
        if sha256 is not None and actual != sha256:
            raise DataError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}")
    return dest


def _fetch(url: str, out, *, progress: bool, timeout: float) -> str:
    """Stream `url` into the binary file `out`; returns the sha256 of the bytes."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise DataError(f"download failed: {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(f"download failed: {url}: {reason}") from None
    total = response.headers.get("Content-Length")
    bar = tqdm(
        total=int(total) if total else None,
        unit="B",
        unit_scale=True,
        desc=f"download {url.rsplit('/', 1)[-1]}",
        disable=not progress,
    )
    digest = hashlib.sha256()
    try:
        with response, bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    except OSError as err:
        raise DataError(f"download failed: {url}: {err}") from None
    return digest.hexdigest()
