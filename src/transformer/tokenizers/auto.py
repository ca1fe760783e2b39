"""`load_tokenizer`: open a tokenizer file of any kind, as its `format` field says."""

from __future__ import annotations

import os

from transformer.tokenizers.bpe import BPE
from transformer.tokenizers.bytebpe import ByteBPE
from transformer.tokenizers.char import CHAR_FORMAT, CharTokenizer
from transformer.tokenizers.files import BPE_FORMAT, BYTEBPE_FORMAT, TokenizerError, read_json
from transformer.tokenizers.wordpiece import FORMAT as WORDPIECE_FORMAT
from transformer.tokenizers.wordpiece import WordPiece

# The tokenizer classes by the `format` string their files carry.
KINDS = {
    BPE_FORMAT: BPE,
    BYTEBPE_FORMAT: ByteBPE,
    CHAR_FORMAT: CharTokenizer,
    WORDPIECE_FORMAT: WordPiece,
}


def load_tokenizer(path: str | os.PathLike) -> BPE | ByteBPE | CharTokenizer | WordPiece:
    """Load a tokenizer file of any kind, whichever `path` holds (its `format` field says)."""
    payload = read_json(path)
    found = payload.get("format") if isinstance(payload, dict) else None
    if found not in KINDS:
        expected = ", ".join(repr(k) for k in KINDS)
        raise TokenizerError(f"{path}: field 'format' is {found!r}, expected one of {expected}")
    return KINDS[found].load(path)
