"""Subword tokenizers in pure Python (no torch): classic BPE and GPT-2 byte-level BPE.

- `BPE`: Sennrich et al. (2016), characters + `</w>`, the merges of `subword-nmt learn-bpe`.
- `ByteBPE`: GPT-2's byte-level BPE (Radford et al. 2019), loads GPT-2's own files.
- `CharTokenizer`: one token per character (nanoGPT's Tiny Shakespeare vocabulary).
- `textbook`: a tiny slow BPE used as the test oracle.
Both save/load versioned JSON and export a Hugging Face `tokenizer.json`.

Modules, each importing only those listed before it (no cycles): `files` (JSON, errors),
`specials`, `punct`, `textbook`, `learn` (the merge learner), `merging` (the merge loop and
cache both encoders share), `pretokenize` (BPE's stages), `hf` (the export), `bpe`, `bytebpe`,
`auto` (`load_tokenizer`).
"""

from transformer.tokenizers.auto import load_tokenizer
from transformer.tokenizers.bpe import BPE
from transformer.tokenizers.bytebpe import ByteBPE, bytes_to_unicode, gpt2_files
from transformer.tokenizers.char import CharTokenizer
from transformer.tokenizers.files import TokenizerError
from transformer.tokenizers.wordpiece import WordPiece

__all__ = [
    "BPE",
    "ByteBPE",
    "CharTokenizer",
    "TokenizerError",
    "WordPiece",
    "bytes_to_unicode",
    "gpt2_files",
    "load_tokenizer",
]
