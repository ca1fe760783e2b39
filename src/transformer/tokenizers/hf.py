"""Export to Hugging Face `tokenizer.json` (the `tokenizers` library's serialization format).

Only writes plain JSON; the `tokenizers` package is never imported here. The written files
load with `tokenizers.Tokenizer.from_file(path)` and encode like our tokenizers do, with one
policy difference: `tokenizers` always recognises special-token text (e.g. "<s>") in the
input, whereas our `encode` treats it as ordinary text unless told otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformer.tokenizers.bpe import BPE
    from transformer.tokenizers.bytebpe import ByteBPE


def _added(token_id: int, content: str) -> dict[str, Any]:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def _bpe_model(
    vocab: dict[str, int], merges: list[tuple[str, str]], unk: str | None, suffix: str | None
) -> dict[str, Any]:
    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": unk,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": suffix,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": vocab,
        "merges": [[a, b] for a, b in merges],
    }


def bpe_to_hf(bpe: BPE) -> dict[str, Any]:
    """`tokenizer.json` content for a classic `BPE` (words split on space, '\\r', '\\n')."""
    specials = bpe.tokens[:4]
    decoder = (
        {"type": "BPEDecoder", "suffix": bpe.end_of_word}
        if bpe.end_of_word is not None
        else {"type": "Fuse"}
    )
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added(i, tok) for i, tok in enumerate(specials)],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": "[ \r\n]+"},
            "behavior": "Removed",
            "invert": False,
        },
        "post_processor": None,
        "decoder": decoder,
        "model": _bpe_model(dict(bpe.vocab), bpe.merges, "<unk>", bpe.end_of_word),
    }


def bytebpe_to_hf(tok: ByteBPE) -> dict[str, Any]:
    """`tokenizer.json` content for a GPT-2 style `ByteBPE` (ByteLevel pre-tokenizer)."""
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    vocab = {token: i for i, token in enumerate(tok.tokens)}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added(i, text) for text, i in sorted(tok.special_tokens.items())],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", **byte_level, "trim_offsets": False},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": _bpe_model(vocab, tok.merges, None, None),
    }
