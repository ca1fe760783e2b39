"""Multi30k (Elliott et al., 2016), task 1: image descriptions in en/de/fr/cs.

Files are `<root>/multi30k/<split>.<lang>.gz` where `<root>` is `data_dir`, else
`$TRANSFORMER_DATA`, else `~/.cache/transformer/data` (a `data_dir` that is itself named
`multi30k` is used as the corpus directory). Missing files are downloaded from the dataset's
public origin (github.com/multi30k/dataset, `data/task1/raw/` at a pinned commit; the base
URL is configurable for mirrors) and checked against their sha256; a file already on disk is
re-hashed against it each time it is used (`verify`: cheap next to reading it).
"""

from __future__ import annotations

import os
from pathlib import Path

from transformer.data.corpus import DataError, ParallelCorpus, read_parallel
from transformer.data.download import data_root, download, verify_file

LANGUAGES = ("en", "de", "fr", "cs")
SPLITS = {"train": 29000, "val": 1014, "test_2016_flickr": 1000}  # split -> pairs
COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/multi30k/dataset/{COMMIT}/data/task1/raw"

# sha256 of each .gz file at COMMIT (as recorded in the shared corpus's SOURCE.md).
SHA256 = {
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
}


def multi30k_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Multi30k directory under the data root (see the module docstring)."""
    root = data_root(data_dir)
    return root if root.name == "multi30k" else root / "multi30k"


def multi30k_files(
    split: str,
    src_lang: str,
    tgt_lang: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download_missing: bool = True,
    base_url: str = DEFAULT_BASE_URL,
    verify: bool = True,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Paths of the source and target files of one split, downloading missing ones.

    Raises `DataError` for an unknown split or language, equal languages, or a missing
    file when `download_missing` is False (naming the directory searched).
    """
    _check_args(split, src_lang, tgt_lang)
    directory = multi30k_dir(data_dir)
    paths = []
    for lang in (src_lang, tgt_lang):
        name = f"{split}.{lang}.gz"
        path = directory / name
        if not path.is_file():
            if not download_missing:
                raise DataError(
                    f"Multi30k file {path} not found (set data_dir or TRANSFORMER_DATA "
                    "to the directory holding multi30k/, or allow the download)"
                )
            download(
                f"{base_url.rstrip('/')}/{name}",
                path,
                sha256=SHA256[name] if verify else None,
                progress=progress,
            )
        elif verify:
            verify_file(path, SHA256[name])
        paths.append(path)
    return paths[0], paths[1]


def load_multi30k(
    split: str = "train",
    src_lang: str = "de",
    tgt_lang: str = "en",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download_missing: bool = True,
    base_url: str = DEFAULT_BASE_URL,
    max_words: int | None = None,
    progress: bool = True,
) -> ParallelCorpus:
    """One Multi30k split as a `ParallelCorpus` (see `read_parallel` for `max_words`)."""
    src, tgt = multi30k_files(
        split,
        src_lang,
        tgt_lang,
        data_dir=data_dir,
        download_missing=download_missing,
        base_url=base_url,
        progress=progress,
    )
    return read_parallel(src, tgt, max_words=max_words)


def _check_args(split: str, src_lang: str, tgt_lang: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown Multi30k split {split!r}; choose from {sorted(SPLITS)}")
    for lang in (src_lang, tgt_lang):
        if lang not in LANGUAGES:
            raise DataError(f"unknown Multi30k language {lang!r}; choose from {LANGUAGES}")
    if src_lang == tgt_lang:
        raise DataError(f"source and target language are both {src_lang!r}")
