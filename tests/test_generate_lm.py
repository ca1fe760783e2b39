"""GPT generation: the sliding window past the context (cached == uncached, and slide 1 ==
nanoGPT's crop loop), hand-computed top-k / top-p sets, sampled frequencies of a tiny GPT
against its softmax (chi-square), and `transformer generate` (streaming, seeds, errors)."""

from __future__ import annotations

import io
import math

import pytest
import torch

from lm_runs import train_lm_run
from transformer.cli import main
from transformer.config import ModelConfig
from transformer.decoding.sampling import filter_logits, generate, stream, window_start
from transformer.models import GPT
from transformer.training.config import RunConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z = 3.09: p = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(3)
    cfg = ModelConfig.preset("tiny", tgt_vocab_size=13, src_vocab_size=13, d_model=16, n_heads=2,
                             d_ff=32, n_decoder_layers=2, dropout=0.0, max_len=8,
                             positional="learned", norm_first=True)  # fmt: skip
    return GPT(cfg).eval()


def test_window_start():
    assert [window_start(n, 0, 8, 2) for n in (1, 8)] == [0, 0]
    assert window_start(9, 0, 8, 2) == 2  # jumps by the slide, leaving 7 positions
    assert window_start(9, 0, 8, 1) == 1 and window_start(12, 3, 8, 1) == 4
    assert window_start(100, 0, None, 1) == 0


@pytest.mark.parametrize("slide", [1, 3, 8])
@pytest.mark.parametrize("kw", [dict(temperature=0.0), dict(temperature=1.0, top_k=6)])
def test_past_the_context_cached_equals_uncached(gpt, slide, kw):
    prompt = torch.randint(0, 13, (3, 5))
    runs = [
        generate(
            gpt,
            prompt,
            30,
            max_positions=8,
            window_slide=slide,
            use_cache=cache,
            generator=torch.Generator().manual_seed(7),
            **kw,
        )
        for cache in (True, False)
    ]
    assert runs[0].shape == (3, 35) and torch.equal(runs[0], runs[1])


def test_slide_one_is_nanogpts_crop(gpt):
    """nanoGPT's generate: idx_cond = idx[:, -block_size:], argmax of the last logits."""
    idx = torch.randint(0, 13, (2, 11))  # a prompt longer than the context, too
    out = generate(gpt, idx, 20, temperature=0.0, max_positions=8, window_slide=1)
    with torch.no_grad():
        for _ in range(20):
            logits = gpt(idx[:, -8:])[:, -1]
            idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, idx)


def test_filters_keep_the_hand_computed_sets():
    probs = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15])  # sorted: 1 (.4), 3 (.3), 4 (.15), 2, 0
    logits = probs.log().unsqueeze(0)

    def kept(**kw):
        return set(torch.nonzero(filter_logits(logits, **kw)[0] > -math.inf).flatten().tolist())

    assert kept(top_k=1) == {1} and kept(top_k=3) == {1, 3, 4}
    assert kept(top_p=0.35) == {1}  # 0.4 >= 0.35
    assert kept(top_p=0.65) == {1, 3}  # 0.4 < 0.65 <= 0.7
    assert kept(top_p=0.8) == {1, 3, 4}  # 0.7 < 0.8 <= 0.85
    assert kept(top_p=1.0) == {0, 1, 2, 3, 4}
    assert kept(top_k=2, top_p=0.5) == {1}  # renormalised over {1, 3}: 0.4 / 0.7 >= 0.5
    assert kept(top_k=2, top_p=0.6) == {1, 3}  # 0.57 < 0.6
    ties = torch.tensor([[2.0, 1.0, 2.0, 2.0, 0.0]])
    assert set(torch.nonzero(filter_logits(ties, top_k=2)[0] > -math.inf).flatten().tolist()) == {
        0, 2, 3}  # fmt: skip


@pytest.mark.parametrize("kw", [dict(temperature=0.8, top_k=6), dict(temperature=1.3, top_p=0.9)])
def test_sampled_frequencies_follow_the_models_softmax(gpt, kw):
    n = 20000
    prompt = torch.tensor([[1, 5, 2, 7]])
    with torch.no_grad():
        logits = gpt(prompt)[0, -1].double() / kw["temperature"]  # (V,)
    probs = logits.softmax(-1)
    order = probs.argsort(descending=True).tolist()
    if "top_k" in kw:  # by hand: the k most probable, renormalised
        keep = order[: kw["top_k"]]
    else:  # the smallest prefix of the sorted tokens whose mass reaches p
        mass, keep = 0.0, []
        for i in order:
            if mass >= kw["top_p"]:
                break
            keep.append(i)
            mass += float(probs[i])
    expected = torch.zeros_like(probs)
    expected[keep] = probs[keep] / probs[keep].sum()
    drawn = generate(gpt, prompt.repeat(n, 1), 1, generator=torch.Generator().manual_seed(0),
                     **kw)[:, -1]  # fmt: skip
    counts = torch.bincount(drawn, minlength=13).double()
    assert set(torch.nonzero(counts).flatten().tolist()) <= set(keep)
    chi2 = float(((counts[keep] - n * expected[keep]) ** 2 / (n * expected[keep])).sum())
    assert chi2 < chi2_critical(len(keep) - 1)


def test_stream_checks_settings(gpt):
    prompt = torch.zeros(1, 2, dtype=torch.long)
    for kw, message in [
        (dict(temperature=-0.1), "temperature must be >= 0"),
        (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
        (dict(top_k=0), "top_k must be an integer >= 1"),
        (dict(max_positions=8, window_slide=9), "window_slide"),
    ]:
        with pytest.raises(ValueError, match=message):
            next(stream(gpt, prompt, 3, **kw))


# ---- the command ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    return train_lm_run(tmp_path_factory.mktemp("lm"))


def generate_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["generate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_streams_the_library_sample(lm_run, capsys):
    from transformer.rundir import RunDir

    args = [str(lm_run), "--prompt", "First", "--max-new-tokens", "40", "--seed", "1",
            "--temperature", "0.9", "--top-k", "10", "--top-p", "0.95"]  # fmt: skip
    code, out, _ = generate_cli(capsys, *args)
    assert code == 0 and out.startswith("First") and out.endswith("\n")
    run = RunDir.open(lm_run)
    model, tok = run.load_model(), run.tokenizer
    prompt = torch.tensor([tok.encode("First")])
    gen = torch.Generator().manual_seed(1)
    ref = generate(model, prompt, 40, temperature=0.9, top_k=10, top_p=0.95, max_positions=16,
                   generator=gen)  # fmt: skip
    assert out == tok.decode(ref[0].tolist()) + "\n"  # 45 tokens, past the 16-token context
    assert generate_cli(capsys, *args)[1] == out  # the same seed, the same text
    assert generate_cli(capsys, *args, "--no-cache")[1] == out
    assert generate_cli(capsys, *args[:-6], "--seed", "2")[1] != out


def test_generate_reads_stdin_and_batches_samples(lm_run, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("All:\n"))
    code, out, _ = generate_cli(capsys, str(lm_run), "--max-new-tokens", "10", "--seed", "3",
                                "--num-samples", "3")  # fmt: skip
    samples = out.split("-" * 20 + " sample ")[1:]
    assert code == 0 and len(samples) == 3
    assert all(s[2:].startswith("All:\n") and len(s[2:]) == 5 + 10 + 1 for s in samples)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--prompt", ""], "empty prompt"),
        (["--prompt", "Zebra"], r"character 'Z' \(U\+005A\) at position 0 is not in"),
        (["--prompt", "a", "--temperature", "-1"], "--temperature must be >= 0"),
        (["--prompt", "a", "--top-p", "0"], r"--top-p must be in \(0, 1\]"),
        (["--prompt", "a", "--top-p", "1.5"], r"--top-p must be in \(0, 1\]"),
        (["--prompt", "a", "--window-slide", "17"], r"--window-slide must be in \[1, 16\]"),
    ],
)
def test_generate_errors_exit_2(lm_run, capsys, args, message):
    import re

    code, out, err = generate_cli(capsys, str(lm_run), *args)
    assert code == 2 and re.search(message, err) and err.count("\n") == 1 and not out


def test_translate_refuses_an_lm_run(lm_run, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("First\n"))
    assert main(["translate", str(lm_run)]) == 2
    assert "holds a language model: use `transformer generate`" in capsys.readouterr().err


def test_generate_refuses_a_translation_run(tmp_path, capsys):
    (tmp_path / "config.toml").write_text(RunConfig.from_dict({}).to_toml())
    code, _, err = generate_cli(capsys, str(tmp_path), "--prompt", "a")
    assert code == 2 and "holds a translation model" in err


def test_streamed_text_waits_for_whole_utf8_characters():
    from transformer.cli.generate import _stream_text
    from transformer.tokenizers import ByteBPE

    tok = ByteBPE.train(["ab ab ab"], 256 + 1 + 1)  # bytes + one merge: "é" is two tokens
    ids = tok.encode("aé ✓b")
    assert len(ids) > len("aé ✓b")  # some characters span several tokens
    out = io.StringIO()
    writes = []
    out.write = lambda s: writes.append(s) or len(s)
    _stream_text(tok, (torch.tensor([i]) for i in ids), out)
    assert "".join(writes) == "aé ✓b" and all("\ufffd" not in w for w in writes)
