"""WordPiece against Hugging Face `tokenizers` (the independent reference) and a textbook
learner; the corpora are found as tests/conftest.py says."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from collections import Counter

import pytest

from conftest import corpus_dir
from transformer.cli import main as cli_main
from transformer.tokenizers import TokenizerError, WordPiece
from transformer.tokenizers.bert_text import pre_tokenize
from transformer.tokenizers.wordpiece import SPECIALS
from transformer.tokenizers.wordpiece_learn import initial_vocab, learn_wordpiece

tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers is the reference")
from tokenizers import BertWordPieceTokenizer, Tokenizer, normalizers, pre_tokenizers  # noqa: E402

CORPORA = [
    ("multi30k", "train.en.gz"),
    ("multi30k", "train.de.gz"),
    ("tinyshakespeare", "input.txt.gz"),
]
TRICKY = [
    "Hello, World! Naïve café ΣΟΦΟΣ x$y+z<w>^`|~",
    "a\u200bb\tc\x0bd\u3000e\u00a0f\x85g\r\nh",
    "你好world İstanbul Ǆ ß ﬁ Ångström",
    "don't 3.5% \ufffdz\x00q «quote» — ¿Qué?",
    "a\u0301\u0323 !\u0301b Straße MÜLLER",
    "x" * 101 + " " + "y" * 100,
]


def read_lines(corpus: str, name: str) -> list[str]:
    with gzip.open(corpus_dir(corpus) / name, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def sample(lines: list[str], n: int = 1500) -> list[str]:
    step = max(len(lines) // n, 1)
    return lines[::step][:n]


def hf_words(text: str, lowercase: bool, strip_accents=None, cjk=True) -> list[str]:
    norm = normalizers.BertNormalizer(
        lowercase=lowercase, strip_accents=strip_accents, handle_chinese_chars=cjk
    )
    pieces = pre_tokenizers.BertPreTokenizer().pre_tokenize_str(norm.normalize_str(text))
    return [w for w, _ in pieces]


def hf_tokenizer(tok: WordPiece) -> BertWordPieceTokenizer:
    return BertWordPieceTokenizer(
        dict(tok.vocab), lowercase=tok.lowercase, strip_accents=tok.strip_accents
    )


def textbook_segment(vocab: dict[str, int], word: str, max_chars: int = 100) -> list[str]:
    """Google BERT's `WordpieceTokenizer.tokenize` for one word, as written there."""
    if len(word) > max_chars:
        return ["[UNK]"]
    chars, start, out = list(word), 0, []
    while start < len(chars):
        end, cur = len(chars), None
        while start < end:
            substr = "".join(chars[start:end])
            if start > 0:
                substr = "##" + substr
            if substr in vocab:
                cur = substr
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        out.append(cur)
        start = end
    return out


def _best_pair(words: dict, counts: Counter, ids: dict, criterion: str, min_freq: int):
    pair_n, sym_n = Counter(), Counter()
    for w, syms in words.items():
        for s in syms:
            sym_n[s] += counts[w]
        for p in itertools.pairwise(syms):
            pair_n[p] += counts[w]

    def key(p):
        c, ia, ib = pair_n[p], ids[p[0]], ids[p[1]]
        if criterion == "frequency":
            return (-c, ia, ib)
        return (-c / (sym_n[p[0]] * sym_n[p[1]]), -c, ia, ib)

    cands = [p for p, c in pair_n.items() if c >= min_freq]
    return min(cands, key=key) if cands else None


def textbook_learn(counts: Counter, vocab_size: int, criterion: str, min_freq: int = 2):
    """Recount everything after every merge; same rules as `wordpiece_learn`'s docstring."""
    tokens, _, _ = initial_vocab(counts, SPECIALS, "##")
    ids = {t: i for i, t in enumerate(tokens)}
    words = {w: [w[0]] + ["##" + c for c in w[1:]] for w in counts}
    while len(tokens) < vocab_size:
        best = _best_pair(words, counts, ids, criterion, min_freq)
        if best is None:
            break
        a, b = best
        new = a + b[2:]
        if new not in ids:
            ids[new] = len(tokens)
            tokens.append(new)
        for w, syms in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    return tokens


# ------------------------------------------------------------------------ pre-tokenisation
@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize("strip_accents", [None, True, False])
@pytest.mark.parametrize("text", TRICKY)
def test_pre_tokenize_equals_hf(text, lowercase, strip_accents):
    assert pre_tokenize(text, lowercase, strip_accents) == hf_words(text, lowercase, strip_accents)


def test_pre_tokenize_without_cjk_equals_hf():
    text = TRICKY[2]
    assert pre_tokenize(text, True, cjk=False) == hf_words(text, True, cjk=False)


def test_pre_tokenize_equals_hf_on_random_text():
    rng = random.Random(0)
    ranges = [(0x20, 0x7F), (0xA0, 0x250), (0x300, 0x370), (0x2000, 0x2070), (0x3000, 0x3010)]
    alphabet = [chr(c) for lo, hi in ranges for c in range(lo, hi)]
    alphabet += [*"\t\n\r\x00\x0b\x85\ufffd\u200b\ufeff\u2065\ue000", *"丟下丝且"]
    for _ in range(400):
        text = "".join(rng.choices(alphabet, k=rng.randint(1, 30)))
        for lowercase in (True, False):
            assert pre_tokenize(text, lowercase) == hf_words(text, lowercase), repr(text)


# ------------------------------------------------------------------------ encoding
@pytest.fixture(scope="module")
def en_sample() -> list[str]:
    return sample(read_lines("multi30k", "train.en.gz"))


@pytest.fixture(scope="module")
def trained(en_sample) -> WordPiece:
    return WordPiece.train(en_sample, 600)


def test_segment_word_equals_textbook(trained, en_sample):
    words = {w for line in en_sample[:300] for w in trained.pre_tokenize(line)}
    words |= {"x" * 101, "y" * 100, "zzq", "€uro"}
    for word in sorted(words):
        got = [trained.tokens[i] for i in trained.segment_word(word)]
        assert got == textbook_segment(trained.vocab, word), word


def _check_corpus(lines: list[str], lowercase: bool, vocab_size: int) -> None:
    tok = WordPiece.train(sample(lines, 3000), vocab_size, lowercase=lowercase)
    hf = hf_tokenizer(tok)
    for line in lines:
        assert tok.encode(line) == hf.encode(line, add_special_tokens=False).ids, line


@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize(("corpus", "name"), CORPORA)
def test_encode_equals_hf_on_a_sample(corpus, name, lowercase):
    lines = read_lines(corpus, name)
    _check_corpus(sample(lines, 2000) + TRICKY, lowercase, 800)


@pytest.mark.slow
@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize(("corpus", "name"), CORPORA)
def test_encode_equals_hf_on_every_line(corpus, name, lowercase):
    _check_corpus(read_lines(corpus, name), lowercase, 4000)


def test_specials_in_text_and_cls_sep_like_hf(trained):
    hf = hf_tokenizer(trained)
    for text in ["a man [MASK] at a [SEP] dog", "[CLS][MASK]x", "[mask] [UNK]"]:
        assert trained.encode(text, add_special_tokens=True) == hf.encode(text).ids
    assert trained.mask_id not in trained.encode("[MASK]", allow_special=False)


def test_encode_pair_like_hf(trained):
    hf = hf_tokenizer(trained).encode("Two dogs.", "A cat!")
    assert trained.encode_pair("Two dogs.", "A cat!") == (hf.ids, hf.type_ids)


def test_decode_joins_pieces_like_hf_decoder(trained, en_sample):
    hf = hf_tokenizer(trained)
    hf.decoder = tokenizers.decoders.WordPiece(prefix="##", cleanup=False)
    for line in en_sample[:200]:
        ids = trained.encode(line)
        assert trained.decode(ids) == hf.decode(ids) == " ".join(trained.pre_tokenize(line))
    assert trained.decode([trained.cls_id, *trained.encode("a dog"), trained.sep_id]) == "a dog"
    with pytest.raises(TokenizerError, match="ids must be integers"):
        trained.decode([trained.vocab_size])


# ------------------------------------------------------------------------ files
def test_save_load_vocab_txt_and_hf_json(trained, tmp_path, en_sample):
    trained.save(tmp_path / "wp.json")
    loaded = WordPiece.load(tmp_path / "wp.json")
    assert loaded.tokens == trained.tokens and loaded.lowercase is trained.lowercase
    trained.write_vocab(tmp_path / "vocab.txt")
    from_txt = WordPiece.from_vocab_file(tmp_path / "vocab.txt")
    assert from_txt.tokens == trained.tokens
    hf_txt = BertWordPieceTokenizer(str(tmp_path / "vocab.txt"), lowercase=True)
    trained.to_hf_json(tmp_path / "tokenizer.json")
    hf = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for line in [*en_sample[:300], *TRICKY, "a [MASK] b"]:
        ids = trained.encode(line)
        assert hf.encode(line, add_special_tokens=False).ids == ids
        assert hf_txt.encode(line, add_special_tokens=False).ids == ids
        assert hf.encode(line).ids == trained.encode(line, add_special_tokens=True)
        assert hf.decode(ids, skip_special_tokens=False) == trained.decode(ids, False)


def test_load_errors(tmp_path, trained):
    trained.save(tmp_path / "wp.json")
    payload = json.loads((tmp_path / "wp.json").read_text())
    bad = {**payload, "vocab": payload["vocab"][5:]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(TokenizerError, match="lacks the special tokens"):
        WordPiece.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text(json.dumps({**payload, "lowercase": "yes"}))
    with pytest.raises(TokenizerError, match="'lowercase' should be bool"):
        WordPiece.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text(json.dumps({**payload, "format": "other"}))
    with pytest.raises(TokenizerError, match="field 'format'"):
        WordPiece.load(tmp_path / "bad.json")


def test_train_errors():
    with pytest.raises(TokenizerError, match="vocab_size"):
        WordPiece.train(["a b"], 0)
    with pytest.raises(TokenizerError, match="criterion"):
        WordPiece.train(["a b"], 10, criterion="bayes")
    with pytest.raises(TokenizerError, match="empty training corpus"):
        WordPiece.train(["  ", ""], 10)
    with pytest.raises(TokenizerError, match="lowercase"):
        WordPiece(SPECIALS, lowercase="no")


# ------------------------------------------------------------------------ training
@pytest.mark.parametrize("criterion", ["likelihood", "frequency"])
def test_learner_equals_textbook(en_sample, criterion):
    rules = WordPiece(SPECIALS)
    counts = Counter(w for line in en_sample[:400] for w in rules.pre_tokenize(line))
    fast = learn_wordpiece(counts, 260, SPECIALS, 2, criterion)
    assert fast == textbook_learn(counts, 260, criterion)
    assert WordPiece.train(en_sample[:400], 260, criterion=criterion).tokens == fast


def hf_trained_vocab(lines: list[str], size: int, lowercase: bool) -> list[str]:
    from tokenizers import models, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=size, min_frequency=2, special_tokens=list(SPECIALS), show_progress=False
    )
    tok.train_from_iterator(lines, trainer)
    vocab = tok.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize(("corpus", "name"), CORPORA)
def test_frequency_vocab_equals_hf_wordpiece_trainer(corpus, name, lowercase):
    """`tokenizers` numbers the `##` characters in hash-table order (it differs from run to
    run) and breaks count ties by id: given its initial order, every token and id agree."""
    lines = sample(read_lines(corpus, name), 4000)
    hf = hf_trained_vocab(lines, 1500, lowercase)
    rules = WordPiece(SPECIALS, lowercase)
    counts = Counter(w for line in lines for w in rules.pre_tokenize(line))
    n_initial = len(initial_vocab(counts, SPECIALS, "##")[0])
    assert learn_wordpiece(counts, 1500, SPECIALS, 2, "frequency", order=hf[:n_initial]) == hf
    ours = WordPiece.train(lines, 1500, lowercase, criterion="frequency").tokens
    assert len(set(ours) ^ set(hf)) <= 0.05 * len(hf)  # (only count ties can part them)


# ------------------------------------------------------------------------ command line
def test_cli_train_encode_decode(tmp_path, en_sample, capsys, monkeypatch):
    import io

    text = tmp_path / "train.txt"
    text.write_text("\n".join(en_sample) + "\n", encoding="utf-8")
    out = tmp_path / "wp.json"
    args = ["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", "500", "--quiet"]
    assert cli_main([*args, "-o", str(out), "--vocab-txt", str(tmp_path / "v.txt"), str(text)]) == 0
    tok = WordPiece.load(out)
    assert tok.vocab_size == 500 and (tmp_path / "v.txt").read_text().split("\n")[4] == "[MASK]"
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("Two dogs run.\nA [MASK] sits.\n"))
    assert cli_main(["tokenizer", "encode", "-t", str(out)]) == 0
    ids = capsys.readouterr().out
    assert ids.splitlines()[0] == " ".join(map(str, tok.encode("Two dogs run.")))
    monkeypatch.setattr("sys.stdin", io.StringIO(ids))
    assert cli_main(["tokenizer", "decode", "-t", str(out)]) == 0
    assert capsys.readouterr().out == "two dogs run .\na [MASK] sits .\n"
