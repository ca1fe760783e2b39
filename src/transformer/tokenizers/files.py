"""Versioned JSON files for the tokenizers (never pickle), with errors that name file and field.

Every file is one JSON object with a `format` string (which class wrote it) and an integer
`version` (each format counts its own versions; a reader lists the versions it accepts).
`transformer.tokenizers.auto.load_tokenizer` reads either kind. This module is the bottom of
the package: it imports nothing from it (only `transformer.durable`, for the writes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from typing import Any

from transformer import durable

BPE_FORMAT = "transformer.tokenizers.BPE"
BYTEBPE_FORMAT = "transformer.tokenizers.ByteBPE"


class TokenizerError(ValueError):
    """Bad tokenizer input: an empty corpus, a bad argument, an unreadable or corrupt file."""


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write `payload` as UTF-8 JSON, atomically and durably (`transformer.durable`: a unique
    temporary name, fsync, rename, fsync of the directory)."""
    durable.write_text(path, json.dumps(payload, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file, turning every failure into a `TokenizerError` naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise TokenizerError(f"{path}: cannot read tokenizer file ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise TokenizerError(f"{path}: not a UTF-8 text file ({err.reason})") from err
    except json.JSONDecodeError as err:
        raise TokenizerError(f"{path}:{err.lineno}:{err.colno}: corrupt JSON ({err.msg})") from err


def read_tokenizer_json(
    path: str | os.PathLike, expected_format: str, versions: Collection[int]
) -> dict[str, Any]:
    """Read a tokenizer file and check its `format` field and that its `version` is one of
    `versions`."""
    payload = read_json(path)
    if not isinstance(payload, dict):
        raise TokenizerError(f"{path}: expected a JSON object, found {type(payload).__name__}")
    found = payload.get("format")
    if found != expected_format:
        raise TokenizerError(f"{path}: field 'format' is {found!r}, expected {expected_format!r}")
    version = payload.get("version")
    if type(version) is not int or version not in versions:
        known = " or ".join(str(v) for v in sorted(versions))
        raise TokenizerError(f"{path}: field 'version' is {version!r}; this code reads {known}")
    return payload


def get_field(payload: dict[str, Any], name: str, kind: type, path: str | os.PathLike) -> Any:
    """`payload[name]`, checked to be an instance of `kind`."""
    if name not in payload:
        raise TokenizerError(f"{path}: missing field {name!r}")
    value = payload[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TokenizerError(
            f"{path}: field {name!r} should be {kind.__name__}, found {type(value).__name__}"
        )
    return value


def check_tokens(tokens: Any, path: str | os.PathLike, name: str = "vocab") -> list[str]:
    """A list of distinct non-empty strings (a vocabulary in id order)."""
    if not isinstance(tokens, list):
        raise TokenizerError(f"{path}: field {name!r} should be a list of strings")
    seen: set[str] = set()
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str) or not tok:
            raise TokenizerError(f"{path}: field {name!r}[{i}] should be a non-empty string")
        if tok in seen:
            raise TokenizerError(f"{path}: field {name!r}[{i}] repeats the token {tok!r}")
        seen.add(tok)
    return tokens


def check_merges(
    merges: Any, vocab: dict[str, int], path: str | os.PathLike
) -> list[tuple[str, str]]:
    """A list of [left, right] string pairs whose parts and results are all in `vocab`."""
    if not isinstance(merges, list):
        raise TokenizerError(f"{path}: field 'merges' should be a list of [left, right] pairs")
    out: list[tuple[str, str]] = []
    for i, pair in enumerate(merges):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(s, str) and s for s in pair)
        ):
            raise TokenizerError(f"{path}: field 'merges'[{i}] should be a pair of strings")
        left, right = pair
        for sym in (left, right, left + right):
            if sym not in vocab:
                raise TokenizerError(
                    f"{path}: field 'merges'[{i}] uses {sym!r}, which is not in the vocabulary"
                )
        out.append((left, right))
    return out


def lookup_ids(table: list, ids: Iterable[int]) -> list:
    """`[table[i] for i in ids]` (decoding), with a clear error for ids outside the table."""
    try:
        ids = list(ids)
        if ids and min(ids) < 0:
            raise IndexError
        return [table[i] for i in ids]
    except (IndexError, TypeError) as err:
        raise TokenizerError(f"decode: ids must be integers in [0, {len(table)})") from err
