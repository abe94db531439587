"""The search page at `/`, in a real headless browser: a query typed into the box, results shown with
titles, snippets, scores, highlighted tokens and the latency, the same ranking as the retriever.

Uses Playwright driving Debian's ``chromium`` (Playwright's own browser download is not needed); skipped,
saying why, only when no chromium is installed. ``IDFSPLADE_SCREENSHOT=path.png`` also saves the
screenshot there (docs/serving.md's picture is made that way).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

CHROMIUM = os.environ.get("IDFSPLADE_CHROMIUM") or next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; "
                                                         "or set IDFSPLADE_CHROMIUM)")
QUERY = "information science definitions"


@contextlib.contextmanager
def _serving(config):
    """`idfsplade serve` of ``config`` in a thread of this process, on a free loopback port."""
    import uvicorn

    from idfsplade.serve import load_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = load_app(config)
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        instance.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(adi_index):
    """`idfsplade serve INDEX`."""
    from idfsplade.serve import ServeConfig

    with _serving(ServeConfig(adi_index)) as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_a_typed_query_shows_titles_snippets_highlights_and_latency(server, browser, tmp_path):
    from fastapi.testclient import TestClient

    url, app = server
    expected = TestClient(app).get("/search", params={"q": QUERY, "k": 10, "explain": "true"}).json()["hits"]
    page = browser.new_page(viewport={"width": 1000, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url + "/")
    page.fill("#q", QUERY)
    page.press("#q", "Enter")
    page.wait_for_selector("li.hit")
    hits = page.locator("li.hit")
    assert hits.count() == 10
    titles = [hits.nth(i).locator(".title").inner_text() for i in range(10)]
    assert titles == [hit["title"] for hit in expected]
    assert page.locator("li.hit .meta").first.inner_text().endswith(f"score {expected[0]['score']:.4f}")
    # the matched tokens are highlighted, in titles and snippets, and listed with their contributions
    marks = page.locator("li.hit mark").all_inner_texts()
    assert len(marks) >= 10 and {"information", "science"} <= {m.lower() for m in marks}
    chips = hits.first.locator(".token").all_inner_texts()
    assert len(chips) == len(expected[0]["explanation"]) and chips[0].startswith(expected[0]["explanation"][0]["token"])
    status = page.locator("#status").inner_text()
    assert status.startswith("10 results in ") and "(server " in status and status.endswith(" ms)")
    assert "q=information+science+definitions" in page.url  # shareable
    assert errors == []
    shot = page.screenshot(path=str(tmp_path / "page.png"), full_page=False)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("IDFSPLADE_SCREENSHOT"):
        Path(os.environ["IDFSPLADE_SCREENSHOT"]).write_bytes(shot)
    page.close()


def test_errors_and_markup_in_documents_are_shown_as_text(server, browser):
    url, _ = server
    page = browser.new_page()
    page.goto(url + "/?q=" + "x" * 5000)  # over the query limit: the service's 422 message is shown
    page.wait_for_selector("#status.error")
    assert "at most 4096 characters" in page.locator("#status").inner_text()
    page.fill("#q", "<img src=x onerror=alert(1)> library")
    page.press("#q", "Enter")
    page.wait_for_selector("li.hit")
    assert page.locator("li.hit img").count() == 0  # document and query text never become markup
    page.close()


def test_hybrid_service_shows_each_part_of_the_fused_score(adi_index, browser):
    from fastapi.testclient import TestClient

    from idfsplade.serve import ServeConfig

    with _serving(ServeConfig(adi_index, hybrid=True)) as (url, app):
        expected = TestClient(app).get("/search", params={"q": QUERY, "k": 5, "explain": "true"}).json()["hits"]
        page = browser.new_page()
        page.goto(url + f"/?q={QUERY.replace(' ', '+')}&k=5")
        page.wait_for_selector("li.hit")
        meta = page.locator("li.hit .meta").first.inner_text()
        top = expected[0]
        part = lambda s: "–" if s is None else f"{s:.2f}"  # noqa: E731
        assert meta.endswith(f"score {top['score']:.4f} (bm25 {part(top['lexical_score'])} ⊕ sparse "
                             f"{part(top['sparse_score'])})")
        page.wait_for_function("document.getElementById('served').textContent.length > 0")
        assert page.locator("#served").inner_text().endswith("+ BM25 (hybrid) · 82 documents")
        page.close()
