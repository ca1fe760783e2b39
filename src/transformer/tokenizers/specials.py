"""The special tokens and their ids, defined once for the whole package.

Classic `BPE` reserves the first four ids for the sequence markers the model and the data
pipeline use: padding, begin and end of sentence, unknown character. GPT-2's byte-level BPE has
one special token, `<|endoftext|>`, whose id comes from its vocabulary (50256 in GPT-2's files).
"""

from __future__ import annotations

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)  # in id order: BPE's ids 0, 1, 2, 3
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(len(SPECIALS))
ENDOFTEXT = "<|endoftext|>"  # GPT-2's document separator
