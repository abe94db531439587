"""The search service: same answers as the retriever, limits answered with the right 4xx, safe under
concurrent requests, and loadable from an index folder's provenance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from idfsplade.errors import InputError
from idfsplade.serve import ServeConfig, ServeLimits, app_from_env, create_app, load_app
from idfsplade.serve.loader import ENV_VAR

LIMITS = ServeLimits(max_query_chars=300, max_k=50, max_batch=4, max_body_bytes=4096)


@pytest.fixture(scope="module")
def adi_docs(adi_path, tiny_encoder):
    """ADI encoded with SPLADE-tiny: ``(csr, doc ids)``."""
    from idfsplade.data import BeirDataset, document_text
    from idfsplade.model import DocumentEncoder

    docs = list(BeirDataset(adi_path).iter_corpus())
    return DocumentEncoder(tiny_encoder).encode([document_text(d) for d in docs]), [d.id for d in docs]


@pytest.fixture(scope="module")
def retriever(adi_docs, tiny_encoder):
    from idfsplade.index import InvertedIndex
    from idfsplade.model import model_query_encoder
    from idfsplade.search import InferenceFreeRetriever

    return InferenceFreeRetriever(model_query_encoder(tiny_encoder), InvertedIndex.from_csr(*adi_docs))


@pytest.fixture(scope="module")
def queries(adi_path) -> list[str]:
    from idfsplade.data import BeirDataset

    return list(BeirDataset(adi_path).queries().values())


@pytest.fixture(scope="module")
def source(retriever):
    from idfsplade.search.index_folder import describe_source

    return describe_source(retriever.query_encoder, "splade-tiny", "adi-idf.json")


@pytest.fixture(scope="module")
def client(retriever, source):
    with TestClient(create_app(retriever, source, limits=LIMITS)) as test_client:
        yield test_client


def _expected(retriever, text: str, k: int) -> dict:
    hits = retriever.search(text, k)
    return {"ids": hits.ids, "scores": hits.scores.tolist()}


def _without_time(result: dict) -> dict:
    assert result["took_ms"] >= 0
    return {"ids": result["ids"], "scores": result["scores"]}


@pytest.mark.parametrize("k", [1, 10, 50])
def test_search_matches_the_retriever(client, retriever, queries, k):
    for text in queries[:8]:
        response = client.post("/search", json={"query": text, "k": k})
        assert response.status_code == 200
        result = _without_time(response.json())
        assert result == _expected(retriever, text, k)
        assert len(result["ids"]) == k


def test_search_defaults_to_ten(client, retriever, queries):
    response = client.post("/search", json={"query": queries[0]})
    assert _without_time(response.json()) == _expected(retriever, queries[0], 10)


def test_batch_equals_singles(client, queries):
    batch = queries[:4]
    response = client.post("/search/batch", json={"queries": batch, "k": 7})
    assert response.status_code == 200
    singles = [_without_time(client.post("/search", json={"query": q, "k": 7}).json()) for q in batch]
    assert [_without_time(r) for r in response.json()] == singles


def test_query_with_no_known_token_returns_nothing(client):
    response = client.post("/search", json={"query": "ﾂ", "k": 5})
    assert response.status_code == 200
    assert (response.json()["ids"], response.json()["scores"]) == ([], [])


def test_health_reports_what_is_served(client, source):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "documents": 82, "model": "splade-tiny",
                               "tokenizer": {"name": "tokenizer.json", "sha256": source.tokenizer.sha256},
                               "idf": {"name": "adi-idf.json", "sha256": source.idf.sha256},
                               "document_store": False,
                               "limits": {"max_query_chars": 300, "max_k": 50, "max_batch": 4,
                                          "max_body_bytes": 4096},
                               "hybrid": None}
    assert len(source.tokenizer.sha256) == len(source.idf.sha256) == 64


def test_openapi_publishes_the_limits(client):
    schema = client.get("/openapi.json").json()
    assert {"/search", "/search/batch", "/health"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["SearchRequest"]["properties"]
    assert request["query"]["maxLength"] == 300
    assert (request["k"]["minimum"], request["k"]["maximum"], request["k"]["default"]) == (1, 50, 10)
    batch = schema["components"]["schemas"]["BatchSearchRequest"]["properties"]
    assert batch["queries"]["maxItems"] == 4
    assert client.get("/docs").status_code == 200


def _messages(response) -> str:
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else " | ".join(f"{e['loc'][-1]}: {e['msg']}" for e in detail)


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/search", {"query": ""}, 422, "query: String should have at least 1 character"),
    ("/search", {"query": " \t\n"}, 422, "query: Value error, query is empty or whitespace only"),
    ("/search", {"query": "x" * 301}, 422, "query: String should have at most 300 characters"),
    ("/search", {"query": "design", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ("/search", {"query": "design", "k": 10**6}, 422, "k: Input should be less than or equal to 50"),
    ("/search", {"query": "design", "k": "many"}, 422, "k: Input should be a valid integer"),
    ("/search", {"query": "design", "k": "10"}, 422, "k: Input should be a valid integer"),  # as the schema says
    ("/search", {"query": "design", "documents": 1}, 422, "documents: Input should be a valid boolean"),
    ("/search", {"query": "design", "explian": True}, 422, "explian: Extra inputs are not permitted"),
    ("/search", {"query": "\u2028\ufeff\x1c"}, 422, "query: Value error, query is empty or whitespace only"),
    ("/search", {"k": 3}, 422, "query: Field required"),
    ("/search", ["design"], 422, "body: Input should be a valid dictionary or object to extract fields from"),
    ("/search/batch", {"queries": ["a", "b", "c", "d", "e"]}, 422,
     "queries: List should have at most 4 items after validation, not 5"),
    ("/search/batch", {"queries": []}, 422,
     "queries: List should have at least 1 item after validation, not 0"),
    ("/search/batch", {"queries": ["design", " "]}, 422, "1: Value error, query is empty or whitespace only"),
    ("/search", {"query": "x" * 5000}, 413, "request body exceeds 4096 bytes"),
])
def test_bad_request_gets_its_4xx_and_the_service_carries_on(client, retriever, path, body, status, message):
    response = client.post(path, json=body)
    assert (response.status_code, _messages(response)) == (status, message)
    after = client.post("/search", json={"query": "library catalog", "k": 3})
    assert _without_time(after.json()) == _expected(retriever, "library catalog", 3)


def test_non_json_body_is_422(client):
    response = client.post("/search", content=b"query=design", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert client.get("/health").status_code == 200


def test_chunked_body_over_the_limit_is_413(client):
    """A body without Content-Length is counted as it arrives, not trusted."""
    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert (response.status_code, response.json()) == (413, {"detail": "request body exceeds 4096 bytes"})
    assert client.get("/health").status_code == 200


def test_concurrent_requests_all_get_their_own_answer(client, retriever, queries):
    texts = [queries[i % len(queries)] + (" systems" if i % 3 else "") for i in range(160)]
    expected = {t: _expected(retriever, t, 10) for t in set(texts)}

    def ask(text: str) -> tuple[str, int, dict]:
        response = client.post("/search", json={"query": text, "k": 10})
        return text, response.status_code, _without_time(response.json())

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, texts))
    assert [status for _, status, _ in answers] == [200] * len(texts)
    assert all(result == expected[text] for text, _, result in answers)


def test_limits_must_be_positive():
    with pytest.raises(InputError, match="max_k must be at least 1, got 0"):
        ServeLimits(max_k=0)


# --- loading from an index folder -------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_index(tmp_path_factory, adi_docs, adi_idf, splade_tiny_path):
    """An index whose provenance names its model and idf file, as the pipeline records them."""
    from idfsplade.index import InvertedIndex

    work = tmp_path_factory.mktemp("serve-work")
    adi_idf.save(work / "idf.json")
    InvertedIndex.from_csr(*adi_docs, info={"model": splade_tiny_path, "idf_file": str(work / "idf.json")}
                           ).save(work / "index")
    return work / "index"


def test_load_app_uses_the_index_provenance(saved_index, retriever, queries, splade_tiny_path):
    """An index without a copy of the query side (the format before it had one) still serves: the
    recorded model is loaded. /health names it and checksums the idf file, and shows no server path."""
    import hashlib

    with TestClient(load_app(ServeConfig(saved_index))) as loaded:
        health = loaded.get("/health").json()
        idf_sha = hashlib.sha256((saved_index.parent / "idf.json").read_bytes()).hexdigest()
        assert (health["model"], health["idf"]) == ("splade-tiny", {"name": "idf.json", "sha256": idf_sha})
        assert str(saved_index.parent) not in loaded.get("/health").text
        for text in queries[:5]:
            got = loaded.post("/search", json={"query": text, "k": 10}).json()
            want = _expected(retriever, text, 10)
            assert got["ids"] == want["ids"]
            np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5)  # idf.json keeps 6 decimals


def test_app_from_env_is_what_workers_load(saved_index, monkeypatch):
    config = ServeConfig(saved_index, limits=ServeLimits(max_batch=8))
    assert ServeConfig.from_env(config.to_env()) == config
    monkeypatch.setenv(ENV_VAR, config.to_env())
    with TestClient(app_from_env()) as worker:
        assert worker.get("/health").json()["limits"]["max_batch"] == 8
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(InputError, match=f"{ENV_VAR} is not set"):
        app_from_env()


def test_load_errors_name_the_fix(tmp_path, adi_docs, saved_index, splade_tiny_path):
    from idfsplade.index import InvertedIndex

    csr, ids = adi_docs
    InvertedIndex.from_csr(csr, ids).save(tmp_path / "bare")
    with pytest.raises(InputError, match="records no model .*; pass --model"):
        load_app(ServeConfig(tmp_path / "bare"))
    moved = str(tmp_path / "moved" / "idf.json")
    InvertedIndex.from_csr(csr, ids, info={"model": splade_tiny_path, "idf_file": moved}).save(tmp_path / "moved")
    with pytest.raises(InputError, match="moved/idf.json: idf file not found; pass --idf"):
        load_app(ServeConfig(tmp_path / "moved"))
    with pytest.raises(InputError, match="missing.json: idf file not found"):
        load_app(ServeConfig(tmp_path / "bare", model=splade_tiny_path, idf=str(tmp_path / "missing.json")))
    small = sp.csr_matrix(np.ones((2, 10), dtype=np.float32))
    InvertedIndex.from_csr(small, ["a", "b"], info={"model": splade_tiny_path}).save(tmp_path / "small")
    with pytest.raises(InputError, match="10-term vocabulary but model .* has 30522"):
        load_app(ServeConfig(tmp_path / "small", idf=str(saved_index.parent / "idf.json")))


# --- the command --------------------------------------------------------------------------------------


@pytest.fixture
def uvicorn_calls(monkeypatch) -> list[tuple[tuple, dict]]:
    import uvicorn

    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setenv(ENV_VAR, "restored after the test")
    return calls


def test_serve_command_loads_once_and_runs_uvicorn(saved_index, uvicorn_calls):
    from typer.testing import CliRunner

    import idfsplade.cli.serve  # noqa: F401  (registers the command)
    from idfsplade.cli.app import app

    result = CliRunner().invoke(app, ["serve", str(saved_index), "--port", "8765", "--max-batch", "8"])
    assert result.exit_code == 0, result.output
    (served,), options = uvicorn_calls[0]
    assert options == {"host": "127.0.0.1", "port": 8765}
    assert TestClient(served).get("/health").json()["limits"]["max_batch"] == 8

    result = CliRunner().invoke(app, ["serve", str(saved_index), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert uvicorn_calls[1] == (("idfsplade.serve.loader:app_from_env",),
                                {"factory": True, "host": "127.0.0.1", "port": 8000, "workers": 2})
    import os

    assert ServeConfig.from_env(os.environ[ENV_VAR]) == ServeConfig(saved_index)


def test_serve_command_reports_a_wrong_folder(tmp_path, uvicorn_calls):
    from typer.testing import CliRunner

    import idfsplade.cli.serve  # noqa: F401
    from idfsplade.cli.app import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert isinstance(result.exception, InputError)
    assert "not an index folder (no meta.json)" in str(result.exception)
    assert uvicorn_calls == []


# --- documents, explanations, GET and the page ---------------------------------------------------------


@pytest.fixture(scope="module")
def served(adi_index):
    """The service over an index folder with its query side and document store, as `idfsplade serve` loads it."""
    with TestClient(load_app(ServeConfig(adi_index, limits=LIMITS))) as test_client:
        yield test_client


def test_hits_carry_titles_snippets_and_explanations(served, retriever):
    text = "library catalog automation"
    plain = served.post("/search", json={"query": text, "k": 5}).json()
    assert plain["ids"] == retriever.search(text, 5).ids
    assert [h["id"] for h in plain["hits"]] == plain["ids"] and [h["score"] for h in plain["hits"]] == plain["scores"]
    assert all(h["title"] and h["snippet"] and h["explanation"] is None for h in plain["hits"])
    for explained in (served.post("/search", json={"query": text, "k": 5, "explain": True}).json(),
                      served.post("/search?explain=true", json={"query": text, "k": 5}).json(),
                      served.get("/search", params={"q": text, "k": 5, "explain": "true"}).json()):
        assert explained["ids"] == plain["ids"]
        for hit in explained["hits"]:
            assert sum(c["contribution"] for c in hit["explanation"]) == pytest.approx(hit["score"], rel=1e-6)
            for start, end in hit["highlights"]:
                assert 0 <= start < end <= len(hit["snippet"])
    bare = served.post("/search", json={"query": text, "k": 5, "documents": False}).json()
    assert bare["ids"] == plain["ids"] and all(h["title"] is None for h in bare["hits"])
    assert served.get("/health").json()["document_store"] is True


def test_k_is_a_json_schema_integer(served):
    """21.0 is an integer in JSON Schema (one number type); 21.5, "21" and true are not."""
    assert served.post("/search", json={"query": "design", "k": 21.0}).status_code == 200
    for k in (21.5, "21", True):
        assert served.post("/search", json={"query": "design", "k": k}).status_code == 422, k


def test_get_search_validates_like_post(served):
    assert served.get("/search", params={"q": " \t"}).json()["detail"][0]["msg"] == \
        "Value error, query is empty or whitespace only"
    assert served.get("/search", params={"q": "x" * 301}).status_code == 422
    assert served.get("/search", params={"q": "design", "k": 0}).status_code == 422
    unknown = served.get("/search", params={"q": "design", "kk": 3})
    assert (unknown.status_code, unknown.json()["detail"][0]["loc"]) == (422, ["query", "kk"])
    assert served.get("/health", params={"verbose": 1}).status_code == 422
    assert served.get("/search", params={"q": "design"}).status_code == 200


def test_the_page_is_served_with_the_limits(served):
    page = served.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="search-form"' in page.text and 'maxlength="300"' in page.text and 'max="50"' in page.text
    assert "innerHTML" not in page.text  # document text is only ever set as text
    assert "/" not in served.get("/openapi.json").json()["paths"]



def test_the_page_ships_as_package_data():
    """The page is a static file (serve/static/index.html) that a wheel must carry."""
    import tomllib
    from pathlib import Path

    from idfsplade.serve.page import PAGE

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert "static/*.html" in pyproject["tool"]["setuptools"]["package-data"]["idfsplade.serve"]
    assert PAGE.is_file() and PAGE.relative_to(PAGE.parents[1]).as_posix() == "static/index.html"
