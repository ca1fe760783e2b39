"""The explorer page in a real browser: Debian's chromium driven by Playwright for Python
(no browser download) against uvicorn on a free localhost port. Types a sentence, waits for
the translation and the heatmaps, switches head and layer, hovers a token, checks what the
page shows against the API, and saves a screenshot (pytest's tmp dir and $TEST_ARTIFACTS)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import httpx
import pytest

from transformer.serve import Explorer, Limits, create_app
from viz_runs import make_run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TEXT = "Ein Hund läuft im Schnee."
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "serve_load.py"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is missing")
if not CHROMIUM.exists():
    pytest.skip(
        f"chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True
    )


def _serve_in_thread():
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.serve_in_thread


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("browser") / "m30k", layers=2, heads=2)
    app = create_app(Explorer.load([str(run)], Limits(workers=2)))
    server, url = _serve_in_thread()(app)
    yield url
    server.should_exit = True


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def _save_screenshot(page, tmp_path: Path) -> Path:
    path = tmp_path / "explorer.png"
    page.screenshot(path=str(path), full_page=True)
    artifacts = os.environ.get("TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / "serve_explorer.png")
    return path


def test_translate_switch_hover(server, browser, tmp_path):
    api = httpx.post(f"{server}/api/attention", json={"text": TEXT}, timeout=60).json()
    translation = httpx.post(f"{server}/api/translate", json={"text": TEXT}, timeout=60).json()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors, outside = [], []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
    page.goto(server)
    page.wait_for_selector("#run option", state="attached")
    assert page.locator("#go").inner_text() == "Translate"

    page.fill("#text", TEXT)
    page.click("#go")
    page.wait_for_selector(".heatmap", timeout=60000)
    assert page.locator("#translation").inner_text() == translation["translation"].strip()
    assert page.locator("#kind").input_value() == "cross"
    assert page.locator(".heatmap").count() == 2  # all heads of layer 0
    cross = api["attention"]["cross"]
    first = page.locator(".heatmap").first
    assert first.locator("h3").inner_text() == "layer 0, head 0"
    cells = first.locator("rect")
    assert cells.count() == len(cross["queries"]) * len(cross["keys"])
    expected = cross["panels"][0]["weights"]  # layer 0, head 0
    assert float(cells.nth(1).get_attribute("data-weight")) == pytest.approx(expected[0][1])

    page.select_option("#head", "1")
    assert page.locator(".heatmap").count() == 1
    assert page.locator(".heatmap h3").inner_text() == "layer 0, head 1"
    page.select_option("#layer", "1")
    assert page.locator(".heatmap h3").inner_text() == "layer 1, head 1"
    assert page.locator("#head").input_value() == "1"  # kept across the layer switch

    weights = next(p for p in cross["panels"] if p["layer"] == 1 and p["head"] == 1)["weights"]
    query = 2
    page.hover(f'#lines text.query[data-index="{query}"]')
    row = weights[query]
    best = max(range(len(row)), key=row.__getitem__)
    focus = page.locator("#focus").inner_text()
    assert focus.startswith(f'"{cross["queries"][query]}" attends most to')
    assert f"head 1: {cross['keys'][best]} ({row[best]:.2f})" in focus
    active = page.locator("#lines line.active")
    assert active.count() == sum(w >= 0.005 for w in row)
    widths = {
        int(active.nth(i).get_attribute("data-key")): float(
            active.nth(i).get_attribute("stroke-width")
        )
        for i in range(active.count())
    }
    assert widths[best] == pytest.approx(0.5 + 7 * row[best], abs=0.01)  # thickness = weight
    assert page.locator(f'.heatmap rect.row-hot[data-query="{query}"]').count() == len(row)

    page.select_option("#kind", "encoder")
    assert page.locator(".heatmap").count() == 2
    assert page.locator("#lines text.key").count() == len(api["source_tokens"])
    page.select_option("#head", "0")
    page.hover('#lines text.query[data-index="0"]')
    shot = _save_screenshot(page, tmp_path)
    assert shot.stat().st_size > 10000
    assert errors == [] and outside == []
    page.close()


def test_errors_show_on_the_page(server, browser):
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("#run option", state="attached")
    page.fill("#text", "   ")
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent.includes('400')")
    assert "the text is empty" in page.locator("#status").inner_text()
    page.close()


def test_api_docs_page_lists_the_endpoints(server, browser):
    page = browser.new_page()
    outside = []
    page.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
    page.goto(f"{server}/docs")
    page.wait_for_selector(".route")
    text = page.locator("#routes").inner_text()
    for route in (
        "POST /api/translate",
        "POST /api/generate",
        "POST /api/attention",
        "GET /api/runs",
        "GET /healthz",
    ):
        assert route in text
    assert outside == []  # served offline: nothing from a CDN
    page.close()
