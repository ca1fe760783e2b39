"""The WordPiece section of `transformer bench tokenizer`: learning and encoding against
Hugging Face `tokenizers` (`WordPieceTrainer`, `BertWordPieceTokenizer`, one thread), plus the
tokens per word of our likelihood-rule vocabulary against `WordPieceTrainer`'s.

Corpus: Multi30k train en+de (the lines given). Every encoder starts each repeat with an empty
cache; both encode one line per call, without [CLS]/[SEP].
"""

from __future__ import annotations

from benchmarks.measure import _measure, _run_specs, _table

OURS_WP_LEARN, HF_WP_LEARN = "ours `WordPiece.train` (frequency)", "HF WordPieceTrainer"
OURS_WP_LIKE = "ours `WordPiece.train` (likelihood)"
OURS_WP, HF_WP = "ours `WordPiece.encode`", "HF BertWordPieceTokenizer, same vocab"


def _hf_trainer(lines: list[str], vocab_size: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    from transformer.tokenizers.wordpiece import SPECIALS

    def train():
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIALS),
            show_progress=False,
        )  # fmt: skip
        tok.train_from_iterator(lines, trainer)
        return tok

    return train


def tokens_per_word(tok, lines: list[str]) -> float:
    words = sum(len(tok.pre_tokenize(line)) for line in lines)
    return sum(len(tok.encode(line)) for line in lines) / words


def bench_wordpiece(lines: list[str], vocab_size: int, repeats: int) -> tuple[str, dict]:
    """Tables (markdown) and {row name: seconds} for learning and for encoding every line."""
    from tokenizers import BertWordPieceTokenizer

    from transformer.tokenizers import WordPiece

    nbytes = len("".join(lines).encode("utf-8"))
    texts = [line.rstrip("\n") for line in lines]
    learn = [
        _measure(OURS_WP_LEARN, lambda: WordPiece.train(lines, vocab_size, criterion="frequency")),
        _measure(OURS_WP_LIKE, lambda: WordPiece.train(lines, vocab_size)),
        _measure(HF_WP_LEARN, _hf_trainer(lines, vocab_size)),
    ]
    rows = _run_specs(learn, nbytes, repeats)
    ours = WordPiece.train(lines, vocab_size)
    hf_vocab = _hf_trainer(lines, vocab_size)().get_vocab()
    theirs = WordPiece(sorted(hf_vocab, key=hf_vocab.__getitem__))
    hf = BertWordPieceTokenizer(dict(ours.vocab), lowercase=True)
    encode = [
        _measure(OURS_WP, lambda: [ours.encode(t) for t in texts], ours.clear_cache),
        _measure(HF_WP, lambda: [hf.encode(t, add_special_tokens=False).ids for t in texts]),
    ]  # (HF's WordPiece model has no cache)
    rows_enc = _run_specs(encode, nbytes, repeats)
    title = f"WordPiece, {vocab_size} tokens, Multi30k train en+de"
    md = _table(f"Learning: {title}", rows) + "\n" + _table(f"Encoding: {title}", rows_enc)
    md += (
        f"\nTokens per word on the training text: ours (likelihood) "
        f"{tokens_per_word(ours, texts):.3f}, HF WordPieceTrainer (frequency) "
        f"{tokens_per_word(theirs, texts):.3f}\n"
    )
    return md, {r.name: r.seconds for r in rows + rows_enc}
