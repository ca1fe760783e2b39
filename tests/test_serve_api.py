"""The explorer's JSON API through FastAPI's test client: every endpoint, every error code,
a run that is not loaded, and parallel requests answered as sequential ones."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from fastapi.testclient import TestClient

from transformer.cli import main
from transformer.models import GPT
from transformer.rundir import DecodingChoice, RunDir
from transformer.serve import Explorer, Limits, create_app
from transformer.viz.loaded import LoadedRun
from viz_runs import make_run

TEXTS = ["Ein Hund läuft im Schnee.", "Ein Mann liest.", "Zwei Hunde spielen im Park."]


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("serve") / "m30k", layers=2, heads=2)


@pytest.fixture(scope="module")
def explorer(run_path):
    gpt_base = LoadedRun.load(run_path)
    torch.manual_seed(1)
    gpt = GPT(gpt_base.run.model_config).eval()  # a GPT run, until `transformer train` has one
    gpt_run = LoadedRun("gpt", gpt_base.run, gpt, None, gpt_base.settings)
    limits = Limits(max_chars=200, max_tokens=12, max_new_tokens=6, workers=3, queue=8)
    return Explorer([LoadedRun.load(run_path), gpt_run], limits)


@pytest.fixture(scope="module")
def client(explorer):
    with TestClient(create_app(explorer)) as client:
        yield client


def test_health_runs_and_pages(client):
    assert client.get("/healthz").json() == {"status": "ok", "runs": 2, "in_flight": 0}
    runs = client.get("/api/runs").json()
    assert [r["name"] for r in runs["runs"]] == ["m30k", "gpt"]
    first = runs["runs"][0]
    assert first["kind"] == "translation" and first["beam"] == 4 and first["heads"] == 2
    assert runs["runs"][1]["attention_kinds"] == ["decoder"]
    assert runs["limits"]["max_tokens"] == 12 and runs["limits"]["queue"] == 8
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http://www.w3.org/2000/svg", "")  # no CDN
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/translate", "/api/generate", "/api/attention", "/api/runs", "/healthz"):
        assert path in paths
    assert "413" in paths["/api/translate"]["post"]["responses"]


def test_translate_is_the_translators_answer(client, run_path):
    reference = LoadedRun.load(run_path).translator  # loaded independently of the server
    for text in TEXTS:
        answer = client.post("/api/translate", json={"run": "m30k", "text": text}).json()
        assert answer["translation"] == reference.translate([text])[0].text
        assert answer["beam"] == 4 and answer["run"] == "m30k"
    default = client.post("/api/translate", json={"text": TEXTS[0]}).json()
    assert default["run"] == "m30k"  # the first run when none is named


def test_attention_is_the_models_need_weights(client, run_path):
    loaded = LoadedRun.load(run_path)
    text = TEXTS[0]
    answer = client.post("/api/attention", json={"text": text}).json()
    assert set(answer["attention"]) == {"encoder", "decoder", "cross"}
    tok = loaded.tokenizer
    out = loaded.translator.translate([text])[0].hypotheses[0].tokens
    with torch.no_grad():
        _, w = loaded.model(
            torch.tensor([tok.encode(text)]), torch.tensor([[tok.bos_id, *out[:-1]]]), True
        )
    cross = answer["attention"]["cross"]
    assert len(cross["panels"]) == 4 and cross["keys"] == answer["source_tokens"]
    for panel in cross["panels"]:
        got = torch.tensor(panel["weights"])
        expected = w.cross[panel["layer"]][0, panel["head"]]
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.allclose(got.sum(-1), torch.ones(len(out)), atol=1e-4)
    one = client.post(
        "/api/attention", json={"text": text, "kind": "encoder", "layer": 1, "head": 0}
    ).json()
    (panel,) = one["attention"]["encoder"]["panels"]
    assert torch.allclose(torch.tensor(panel["weights"]), w.encoder[1][0, 0], atol=1e-5)


def test_generate_for_a_gpt_run(client, explorer):
    body = {"run": "gpt", "prompt": "Ein Hund", "max_new_tokens": 5, "temperature": 0}
    answer = client.post("/api/generate", json=body).json()
    loaded = explorer.runs["gpt"]
    ids = loaded.tokenizer.encode("Ein Hund")
    n = len(ids)
    with torch.no_grad():  # greedy, by hand: the argmax of the whole sequence each step
        for _ in range(5):
            ids.append(int(loaded.model(torch.tensor([ids]))[0, -1].argmax()))
            if ids[-1] == loaded.tokenizer.eos_id:
                break
    assert answer["continuation"] == loaded.tokenizer.decode(ids[n:])
    sampled = [
        client.post("/api/generate", json={**body, "temperature": 1.0, "seed": 7}) for _ in range(2)
    ]
    assert sampled[0].json() == sampled[1].json()  # the same seed, the same continuation
    attention = client.post("/api/attention", json={"run": "gpt", "text": "Ein Hund"}).json()
    view = attention["attention"]["decoder"]
    assert view["queries"] == view["keys"] == attention["source_tokens"]
    assert attention["output"] == ""


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/translate", {"text": ""}, 400, "the text is empty"),
        ("/api/translate", {"text": "   "}, 400, "the text is empty"),
        ("/api/translate", {"run": "gpt", "text": "Ein"}, 400, "is a GPT run"),
        ("/api/generate", {"prompt": "Ein"}, 400, "not a GPT run"),
        ("/api/generate", {"run": "gpt", "prompt": ""}, 400, "the prompt is empty"),
        ("/api/attention", {"text": "Ein", "layer": 5}, 400, "2 layers (0 .. 1), got 5"),
        ("/api/attention", {"run": "gpt", "text": "Ein", "kind": "cross"}, 400, "no cross"),
        ("/api/translate", {"run": "de-fr", "text": "Ein"}, 404, "'de-fr' is not loaded"),
        ("/api/attention", {"run": "de-fr", "text": "Ein"}, 404, "loaded: m30k, gpt"),
        ("/api/generate", {"run": "de-fr", "prompt": "Ein"}, 404, "is not loaded"),
        ("/api/translate", {"text": "Hund " * 50}, 413, "250 characters; at most 200"),
        ("/api/translate", {"text": "Eine Frau liest ein Buch."}, 413, "17 tokens; at most 12"),
        ("/api/generate", {"run": "gpt", "prompt": "Ein", "max_new_tokens": 7}, 413, "at most 6"),
        ("/api/translate", {}, 422, "text: Field required"),
        ("/api/translate", {"text": 5}, 422, "text: Input should be a valid string"),
        ("/api/translate", {"text": "Ein", "beam": 9}, 422, "beam: Extra inputs"),
        ("/api/attention", {"text": "Ein", "kind": "all"}, 422, "kind: Input should be"),
        ("/api/generate", {"run": "gpt", "prompt": "a", "max_new_tokens": 0}, 422, "greater"),
    ],
)
def test_errors_are_one_readable_line(client, path, body, status, message):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and message in detail and "Traceback" not in detail


def test_malformed_and_oversized_bodies(client):
    headers = {"content-type": "application/json"}
    bad = client.post("/api/translate", content=b'{"text": ', headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"] == "the body is not valid JSON"
    array = client.post("/api/translate", content=b"[1, 2]", headers=headers)
    assert array.status_code == 422 and "JSON object" in array.json()["detail"]
    huge = client.post("/api/translate", content=b"x" * 70000, headers=headers)
    assert huge.status_code == 413 and "65536 bytes" in huge.json()["detail"]
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/api/translate").status_code == 405


def test_a_bug_answers_500_without_a_trace(explorer):
    app = create_app(explorer)
    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.explorer.translate = None  # calling it raises TypeError inside the worker
        response = client.post("/api/translate", json={"text": "Ein"})
    del app.state.explorer.translate
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (see the server log)"}


def test_saturated_server_answers_503(run_path):
    limits = Limits(workers=1, queue=1)
    explorer = Explorer([LoadedRun.load(run_path)], limits)
    release, entered = threading.Event(), threading.Semaphore(0)
    real = explorer.translate

    def slow(run, text):
        entered.release()
        release.wait(30)
        return real(run, text)

    explorer.translate = slow
    with TestClient(create_app(explorer)) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/api/translate", json={"text": "Ein"})
        assert entered.acquire(timeout=30)  # one computing
        second = pool.submit(client.post, "/api/translate", json={"text": "Ein"})
        deadline = time.monotonic() + 30
        while client.get("/healthz").json()["in_flight"] < 2:  # one waiting
            assert time.monotonic() < deadline
        refused = client.post("/api/translate", json={"text": "Ein"})
        release.set()
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["detail"]
        assert first.result().status_code == second.result().status_code == 200


def test_parallel_requests_answer_as_sequential_ones(client):
    requests = [("/api/translate", {"text": t}) for t in TEXTS] + [
        ("/api/attention", {"text": t, "kind": "cross"}) for t in TEXTS
    ]
    requests = requests * 3

    def essence(path, body):
        answer = client.post(path, json=body).json()
        return answer["translation"] if path == "/api/translate" else answer

    sequential = [essence(p, b) for p, b in requests]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda r: essence(*r), requests))
    assert parallel == sequential


def test_recorded_decoding_settings_are_used(tmp_path):
    path = make_run(tmp_path / "chosen")
    RunDir.open(path).record_decoding(DecodingChoice(beam=2, alpha=0.0), scores=[])
    with TestClient(create_app(Explorer.load([str(path)]))) as client:
        (info,) = client.get("/api/runs").json()["runs"]
        answer = client.post("/api/translate", json={"text": TEXTS[0]}).json()
    assert info["beam"] == answer["beam"] == 2 and answer["alpha"] == 0.0
    assert info["decoding"] == "beam 2, alpha 0, latest weights (recorded in decoding.json)"
    overridden = Explorer.load([str(path)], beam=3)
    assert overridden.describe()[0]["decoding"].endswith("(recorded in decoding.json, beam given)")


def test_cli_errors(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    assert "config.toml not found" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["serve", str(make_run(tmp_path / "r")), "--beam", "0"]) == 2
    assert "beam must be a positive integer" in capsys.readouterr().err


def test_a_trained_language_model_run_is_served(tmp_path):
    """A GPT run written by `transformer train` (data.task "lm") through RunDir: generate
    gives the seeded sampler's text, attention the model's own causal weights."""
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question.\n" * 40, encoding="utf-8")
    config = tmp_path / "lm.toml"
    config.write_text(
        '[model]\npreset = "tiny"\nd_model = 16\nn_heads = 2\nd_ff = 32\nn_encoder_layers = 0\n'
        'n_decoder_layers = 1\nmax_len = 32\npositional = "learned"\nnorm_first = true\n'
        f'[data]\ntask = "lm"\ntext_file = "{text}"\nblock_size = 16\nbatch_size = 4\n'
        "[train]\nmax_steps = 3\nwarmup = 1\nval_every = 3\nsave_every = 3\nprogress = false\n"
        'device = "cpu"\noptimizer = "adamw"\nschedule = "cosine"\nlr = 0.001\nmin_lr = 0.0001\n'
        "label_smoothing = 0.0\n"
    )
    assert main(["train", str(config), "--out", str(tmp_path / "lm")]) == 0
    client = TestClient(create_app(Explorer.load([str(tmp_path / "lm")], Limits())))
    info = client.get("/api/runs").json()["runs"][0]
    assert info["kind"] == "gpt" and info["beam"] is None and info["alpha"] is None
    assert info["decoding"] == "sampling, per request"
    ask = {"run": "lm", "prompt": "to be", "max_new_tokens": 8, "seed": 3}
    first, again = (client.post("/api/generate", json=ask) for _ in range(2))
    assert first.status_code == 200 and first.json() == again.json()  # seeded
    assert len(first.json()["continuation"]) == 8  # one character a token
    seen = client.post("/api/attention", json={"run": "lm", "text": "to be"}).json()
    panels = seen["attention"]["decoder"]["panels"]  # one per (layer, head), 5 decimals
    run = RunDir.open(tmp_path / "lm")
    ids = run.tokenizer.encode("to be")
    _, expected = run.load_model()(torch.tensor([ids]), need_weights=True)
    assert len(ids) == 5 and [(p["layer"], p["head"]) for p in panels] == [(0, 0), (0, 1)]
    for p in panels:
        got = torch.tensor(p["weights"])
        torch.testing.assert_close(got, expected[0][0, p["head"]], atol=1e-5, rtol=0)  # layer 0
    assert client.post("/api/translate", json={"run": "lm", "text": "hi"}).status_code == 400
