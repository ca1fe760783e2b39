"""`load_tokenizer`: open a tokenizer file of either kind, as its `format` field says."""

from __future__ import annotations

import os

from transformer.tokenizers.bpe import BPE
from transformer.tokenizers.bytebpe import ByteBPE
from transformer.tokenizers.files import BPE_FORMAT, BYTEBPE_FORMAT, TokenizerError, read_json


def load_tokenizer(path: str | os.PathLike) -> BPE | ByteBPE:
    """Load a `BPE` or `ByteBPE` file, whichever `path` holds (its `format` field says)."""
    payload = read_json(path)
    found = payload.get("format") if isinstance(payload, dict) else None
    if found == BPE_FORMAT:
        return BPE.load(path)
    if found == BYTEBPE_FORMAT:
        return ByteBPE.load(path)
    raise TokenizerError(
        f"{path}: field 'format' is {found!r}, expected {BPE_FORMAT!r} or {BYTEBPE_FORMAT!r}"
    )
