"""The serving install: a venv with only ``idfsplade[serve]`` (no torch) answers ``/search`` on an index
built by the full install, and a command that needs torch there says which extra to install.

Runs only where ``IDFSPLADE_SERVE_VENV`` names such a venv (``.ci/run`` builds one as ``.venv-serve``)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

VENV = os.environ.get("IDFSPLADE_SERVE_VENV")
pytestmark = pytest.mark.skipif(not VENV, reason="IDFSPLADE_SERVE_VENV does not name a serving-only venv")
QUERY = "What is information science? Give definitions where possible."


def _bin(name: str) -> str:
    return str(Path(VENV) / "bin" / name)


def test_serving_venv_has_no_torch():
    done = subprocess.run([_bin("python"), "-c", "import importlib.util as u; "
                           "print([m for m in ('torch', 'transformers', 'sentence_transformers') if u.find_spec(m)])"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_serving_venv_answers_search_on_an_index_built_elsewhere(adi_index, tmp_path):
    import httpx

    from idfsplade.search.index_folder import open_index_retriever

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    # from another folder, so the serving venv's own copy of idfsplade is imported, not this checkout's
    server = subprocess.Popen([_bin("idfsplade"), "serve", str(adi_index), "--port", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.25)
        answer = httpx.post(f"{url}/search", json={"query": QUERY, "k": 5}, timeout=30).json()
    finally:
        server.terminate()
        server.wait(30)
    retriever, _ = open_index_retriever(adi_index)
    expected = retriever.search(QUERY, 5)
    assert answer["ids"] == expected.ids
    assert answer["scores"] == pytest.approx(expected.scores.tolist(), rel=1e-5)
    assert answer["hits"][0]["title"]


def test_a_torch_command_names_the_extra(tmp_path):
    done = subprocess.run([_bin("idfsplade"), "encode", "datasets/adi", "--out", str(tmp_path / "docs")],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: this needs torch, transformers and sentence-transformers, which this install lacks: pip install 'idfsplade[model]'"]
