"""Classic BPE: against the lecture, the textbook oracle and subword-nmt (learn-bpe, apply-bpe)."""

from __future__ import annotations

import gzip
import io
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import corpus_dir
from transformer.tokenizers import BPE, TokenizerError, textbook
from transformer.tokenizers.pretokenize import split_words


def multi30k_lines(split: str, langs=("en", "de"), limit: int | None = None) -> list[str]:
    root = corpus_dir("multi30k")
    lines: list[str] = []
    for lang in langs:
        with gzip.open(root / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
            lines += f.readlines()[:limit]
    return lines


def subword_nmt_codes(lines: list[str], num_merges: int) -> list[tuple[str, str]]:
    """Merges of subword-nmt's own learner (in process, its stderr progress bar silenced)."""
    from subword_nmt.learn_bpe import learn_bpe

    class Named(io.StringIO):
        name = "corpus"

    out = io.StringIO()
    stderr, sys.stderr = sys.stderr, io.StringIO()
    try:
        learn_bpe(Named("".join(lines)), out, num_merges)
    finally:
        sys.stderr = stderr
    rows = out.getvalue().splitlines()
    assert rows[0].startswith("#version")
    return [tuple(r.split(" ")) for r in rows[1:]]


def random_corpus(rng: random.Random, alphabet: str, n_words: int) -> list[str]:
    words = ["".join(rng.choices(alphabet, k=rng.randint(1, 7))) for _ in range(n_words)]
    return [" ".join(rng.choices(words, k=rng.randint(1, 9))) for _ in range(4 * n_words)]


def test_lecture_example_learns_ug_un_hug():
    # Lecture 001, "Byte Pair Encoding": hug 10, pug 5, pun 12, bun 4, hugs 5.
    lines = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
    bpe = BPE.train(lines, 3, end_of_word=None)
    assert bpe.merges == [("u", "g"), ("u", "n"), ("h", "ug")]
    assert bpe.tokenize("hugs bun") == ["hug", "s", "b", "un"]


@pytest.mark.parametrize("end_of_word", ["</w>", None])
@pytest.mark.parametrize("seed", range(6))
def test_fast_learner_equals_textbook(seed, end_of_word):
    rng = random.Random(seed)
    lines = random_corpus(rng, "aab\tcd" if seed % 2 else "abcdefgh", 30)
    ours = BPE.train(lines, 60, end_of_word=end_of_word, min_frequency=1 + seed % 3)
    table = textbook.word_table(lines, end_of_word)
    assert ours.merges == textbook.learn(table, 60, min_frequency=1 + seed % 3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="aabbc", min_size=1, max_size=8), min_size=1, max_size=25))
def test_fast_learner_equals_textbook_hypothesis(words):
    lines = [" ".join(words), " ".join(words[::2])]
    ours = BPE.train(lines, 30, min_frequency=1)
    assert ours.merges == textbook.learn(textbook.word_table(lines, "</w>"), 30, min_frequency=1)
    for w in words:
        assert ours.segment_word(w) == textbook.encode_word(
            textbook.split_word(w, "</w>"), ours.merges
        )


def test_segmentation_equals_textbook_on_unseen_words():
    rng = random.Random(1)
    bpe = BPE.train(random_corpus(rng, "abcab", 40), 50, min_frequency=1)
    for _ in range(200):
        w = "".join(rng.choices("abcab", k=rng.randint(1, 12)))
        assert bpe.segment_word(w) == textbook.encode_word(
            textbook.split_word(w, "</w>"), bpe.merges
        )


def test_merges_equal_subword_nmt_on_multi30k_slice():
    lines = multi30k_lines("train", limit=1500)
    bpe = BPE.train(lines, 800)
    assert bpe.merges == subword_nmt_codes(lines, 800)


@pytest.mark.slow
def test_merges_and_segmentation_equal_subword_nmt_on_multi30k_8000(tmp_path):
    from subword_nmt.apply_bpe import BPE as SubwordNmtBPE

    lines = multi30k_lines("train")
    bpe = BPE.train(lines, 8000)
    assert len(bpe.merges) == 8000
    assert bpe.merges == subword_nmt_codes(lines, 8000)
    bpe.write_codes(tmp_path / "codes")
    with open(tmp_path / "codes", encoding="utf-8") as f:
        reference = SubwordNmtBPE(f)
    for line in lines + multi30k_lines("test_2016_flickr"):
        assert bpe.segment(line) == reference.process_line(line), line


def test_at_at_export_equals_subword_nmt_apply_bpe(tmp_path):
    from subword_nmt.apply_bpe import BPE as SubwordNmtBPE

    bpe = BPE.train(multi30k_lines("train", limit=4000), 1000)
    codes = tmp_path / "codes"
    bpe.write_codes(codes)
    with open(codes, encoding="utf-8") as f:
        reference = SubwordNmtBPE(f)
    lines = [*multi30k_lines("val", limit=500), "  lead and trail  \n", "x\n", "\n", "ÿ zz\t q\n"]
    for line in lines:
        assert bpe.segment(line) == reference.process_line(line), line


def test_special_ids_and_unknown_characters():
    bpe = BPE.train(["low lower lowest newer wider"] * 3, 20)
    assert [bpe.tokens[i] for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert (bpe.pad_id, bpe.bos_id, bpe.eos_id, bpe.unk_id) == (0, 1, 2, 3)
    ids = bpe.encode("lowest", add_bos=True, add_eos=True)
    assert ids[0] == bpe.bos_id and ids[-1] == bpe.eos_id
    assert bpe.decode(ids) == "lowest"
    assert bpe.unk_id in bpe.encode("lozenge")  # 'z' was never seen
    assert "<s>" not in bpe.tokenize("<s>")  # special text is ordinary text
    assert bpe.vocab_size == len(bpe.tokens) == len(set(bpe.tokens))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="lowerstnid \n\t", max_size=40))
def test_decode_inverts_encode_up_to_whitespace(text):
    bpe = _small_bpe()
    assert bpe.decode(bpe.encode(text)) == " ".join(split_words(text))


_SMALL: list[BPE] = []


def _small_bpe() -> BPE:
    if not _SMALL:
        _SMALL.append(BPE.train(["low lower lowest newer wider\tside ties", "stone tin"] * 3, 30))
    return _SMALL[0]


def test_save_load_round_trip(tmp_path):
    bpe = BPE.train(multi30k_lines("val", limit=300), 200)
    bpe.save(tmp_path / "bpe.json")
    again = BPE.load(tmp_path / "bpe.json")
    assert again.merges == bpe.merges and again.tokens == bpe.tokens
    for line in multi30k_lines("test_2016_flickr", limit=50):
        assert again.encode(line) == bpe.encode(line)


def test_constructor_checks_merges():
    with pytest.raises(TokenizerError, match=r"BPE: merge 1 \('b', 'c</w>'\)"):
        BPE([("a", "b"), ("b", "c</w>")], ["a", "b", "a</w>", "b</w>"])  # "c</w>": no symbol


def test_clear_errors_for_bad_training_input():
    with pytest.raises(TokenizerError, match="empty training corpus"):
        BPE.train(["", "   \n"], 10)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(TokenizerError, match="num_merges"):
            BPE.train(["a b"], bad)
    with pytest.raises(TokenizerError, match="min_frequency"):
        BPE.train(["a b"], 5, min_frequency=0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "corrupt JSON"),
        ('{"format": "transformer.tokenizers.BPE", "version": 1, "vocab"', "corrupt JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format": "other", "version": 1}', "field 'format'"),
        ('{"format": "transformer.tokenizers.BPE", "version": 99}', "field 'version'"),
        ('{"format": "transformer.tokenizers.BPE", "version": true}', "field 'version'"),
        ('{"format": "transformer.tokenizers.BPE", "version": 2}', "missing field 'pre_tokenizer'"),
        ('{"format": "transformer.tokenizers.BPE", "version": 1}', "missing field 'vocab'"),
        (
            '{"format": "transformer.tokenizers.BPE", "version": 1, "end_of_word": "</w>",'
            ' "vocab": ["<pad>", "<s>", "</s>", "<unk>", "a"], "merges": [["a", "b"]]}',
            "not in the vocabulary",
        ),
        (
            '{"format": "transformer.tokenizers.BPE", "version": 1, "end_of_word": "</w>",'
            ' "vocab": ["a", "<s>", "</s>", "<unk>"], "merges": []}',
            "must start with",
        ),
    ],
)
def test_corrupt_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "tok.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenizerError, match=message) as info:
        BPE.load(path)
    assert str(path) in str(info.value)


def test_unreadable_file_gives_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match="cannot read"):
        BPE.load(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TokenizerError, match="UTF-8"):
        BPE.load(tmp_path / "bin.json")


def test_tokenizers_package_does_not_import_torch():
    code = "import sys, transformer.tokenizers; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_progress_bar_is_optional(capsys):
    BPE.train(["low lower lowest"] * 2, 5)
    assert "merge" not in capsys.readouterr().err
    BPE.train(["low lower lowest"] * 2, 5, progress=True)
    assert "merge" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [[-1], [10**6], ["3"], [1.5]])
def test_decode_rejects_bad_ids(bad):
    with pytest.raises(TokenizerError, match="ids must be integers"):
        _small_bpe().decode(bad)


def test_tiny_cache_still_segments_like_textbook(monkeypatch):
    import transformer.tokenizers.merging as merging

    monkeypatch.setattr(merging, "CACHE_LIMIT", 5)
    bpe = BPE.train(multi30k_lines("val", limit=300), 150)
    line = " ".join(multi30k_lines("test_2016_flickr", limit=3)).replace("\n", " ")
    expected = [
        tok
        for w in split_words(line)
        for tok in textbook.encode_word(textbook.split_word(w, "</w>"), bpe.merges)
    ]
    for _ in range(2):
        assert [bpe.tokens[i] for i in bpe.encode(line)] == expected
