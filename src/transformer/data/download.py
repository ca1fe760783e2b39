"""Fetch a corpus file from its public origin: urllib, a tqdm progress bar, a sha256 check,
and an atomic write (temporary file + rename), so an interrupted download never leaves a
truncated file where a loader would take it for the real one.

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

from transformer.data.corpus import DataError

ENV_VAR = "TRANSFORMER_DATA"
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


def download(
    url: str, dest: Path, *, sha256: str | None = None, progress: bool = True, timeout: float = 60
) -> Path:
    """Download `url` to `dest` (atomically) and check its sha256 when given.

    Raises `DataError` naming the URL on an HTTP/network error, and naming both digests on
    a checksum mismatch (the partial file is removed in both cases).
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {dest.parent} to download {url}: {err}") from None
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        _fetch(url, tmp, progress=progress, timeout=timeout)
        if sha256 is not None:
            actual = sha256_file(tmp)
            if actual != sha256:
                raise DataError(
                    f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}"
                )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _fetch(url: str, tmp: Path, *, progress: bool, timeout: float) -> None:
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
    try:
        with response, open(tmp, "wb") as out, bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    except OSError as err:
        raise DataError(f"download failed: {url}: {err}") from None
