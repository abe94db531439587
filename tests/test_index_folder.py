"""An index folder carries its query side (tokenizer.json + idf.json) and its documents, so `search`
and the service answer with no model and no torch: the same hits as the model-loading path, with
titles, snippets and explanations whose contributions sum to the scores."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from idfsplade.errors import InputError

HEAVY = ("torch", "transformers", "sentence_transformers")
QUERY = "What is information science? Give definitions where possible."


@pytest.fixture(scope="module")
def built(adi_path, tmp_path_factory):
    """`evaluate`'s IDF → encode → index for ADI (splade-tiny, corpus idf): ``(work folder, retriever)``."""
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, build_sparse_retriever

    work = tmp_path_factory.mktemp("adi-index-folder")
    retriever, _ = build_sparse_retriever(SparseModelSpec(model="splade-tiny", idf="corpus"), BeirDataset(adi_path), work)
    return work, retriever


@pytest.fixture(scope="module")
def queries(adi_path) -> list[str]:
    from idfsplade.data import BeirDataset

    return list(BeirDataset(adi_path).queries().values())


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=300)


def test_index_folder_holds_the_query_side_and_documents(built):
    work, _ = built
    index = work / "index"
    meta = json.loads((index / "meta.json").read_text())
    for name in ("tokenizer.json", "idf.json"):
        entry = meta["info"]["query"][name.split(".")[0]]
        assert entry == {"name": name, "sha256": hashlib.sha256((index / name).read_bytes()).hexdigest()}
    # the idf copy is byte for byte the idf.json the documents were encoded with
    assert (index / "idf.json").read_bytes() == (work / "idf.json").read_bytes()
    assert json.loads((index / "tokenizer.json").read_text())["truncation"]["max_length"] == 512
    assert meta["info"]["documents"]["count"] == 82
    first = json.loads((index / "documents.jsonl").read_text().splitlines()[0])
    assert set(first) == {"_id", "title", "text"}


def test_search_command_imports_no_torch(built):
    """The search path in a fresh process: hits printed, and torch, transformers and
    sentence-transformers never imported."""
    work, retriever = built
    result = _run("""
        import json, sys
        from idfsplade.console import main  # the console script's entry point
        sys.argv = ["idfsplade", "search", sys.argv[1], "-q", sys.argv[2], "--k", "5"]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        print(json.dumps(sorted(m for m in ("torch", "transformers", "sentence_transformers", "scipy", "typer",
                                            "pydantic") if m in sys.modules)), file=sys.stderr)
    """, str(work / "index"), QUERY)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    hits = retriever.search(QUERY, 5)
    assert [line[1] for line in lines] == hits.ids
    np.testing.assert_allclose([float(line[2]) for line in lines], hits.scores, atol=1e-4)
    assert all(len(line) == 5 and line[3] for line in lines)  # rank, id, score, title, snippet


@pytest.mark.parametrize("extra", [[], ["--explain"], ["--k", "3", "--prune-ratio", "0.2"], ["--no-explain"],
                                   ["--hybrid", "--explain"], ["--hybrid", "--hybrid-method", "rrf", "--k", "4"]])
def test_quick_path_prints_what_the_typer_command_prints(built, extra, capsys, monkeypatch):
    from idfsplade.cli import main
    from idfsplade.console import quick_search

    work, _ = built
    argv = ["search", str(work / "index"), "-q", QUERY, *extra]
    assert quick_search(argv) == 0
    quick = capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["idfsplade", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert (exit_info.value.code or 0) == 0
    assert capsys.readouterr().out == quick and quick.count("\n") >= 3


@pytest.mark.parametrize("argv", [["search", "INDEX", "--queries", "q.jsonl"], ["search", "INDEX", "-q", "x", "--k", "many"],
                                  ["search", "INDEX", "-q", "x", "--help"], ["search", "INDEX"], ["index", "a"],
                                  ["search", "INDEX", "-q", "x", "--unknown"]])
def test_anything_but_the_plain_form_goes_to_typer(argv):
    from idfsplade.console import quick_search

    assert quick_search(argv) is None


def test_quick_path_errors_are_one_line(tmp_path, capsys):
    from idfsplade.console import quick_search

    assert quick_search(["search", str(tmp_path), "-q", "x"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: not an index folder (no meta.json)\n"
    assert quick_search(["search", str(tmp_path), "-q", "x", "--k", "0"]) == 2
    assert "field '--k': --k must be at least 1, got 0" in capsys.readouterr().err


def test_service_imports_no_torch(built):
    work, retriever = built
    result = _run("""
        import json, sys
        from fastapi.testclient import TestClient
        from idfsplade.serve import ServeConfig, load_app
        client = TestClient(load_app(ServeConfig(sys.argv[1])))
        answer = client.post("/search", json={"query": sys.argv[2], "k": 5, "explain": True}).json()
        health = client.get("/health").json()
        print(json.dumps({"ids": answer["ids"], "health": health,
                          "heavy": [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]}))
    """, str(work / "index"), QUERY)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["heavy"] == []
    assert out["ids"] == retriever.search(QUERY, 5).ids
    index = work / "index"
    assert out["health"]["model"] == "splade-tiny"
    assert out["health"]["idf"] == {"name": "idf.json",
                                    "sha256": hashlib.sha256((index / "idf.json").read_bytes()).hexdigest()}
    assert out["health"]["document_store"] is True
    assert str(work) not in json.dumps(out["health"])  # names and checksums, no server paths


def test_index_copy_answers_exactly_like_the_model(built, queries, splade_tiny_path):
    """Torch-free (the index's copy) and model-loading (the model + the recorded idf.json) agree exactly."""
    from idfsplade.search.index_folder import open_index_retriever

    work, _ = built
    light, source = open_index_retriever(work / "index")
    heavy, heavy_source = open_index_retriever(work / "index", model="splade-tiny", idf=str(work / "idf.json"))
    assert (source.torch_free, heavy_source.torch_free) == (True, False)
    assert source.idf.sha256 == heavy_source.idf.sha256
    for text in queries:
        a, b = light.search(text, 20), heavy.search(text, 20)
        assert a.ids == b.ids
        assert np.array_equal(a.scores, b.scores)


@pytest.fixture(scope="module")
def model_arguments(built, tmp_path_factory, splade_tiny_path):
    """The same model named every way a user can: alias, local folder, trained-run (saved
    SparseEncoder) folder, `export opensearch` folder and its SPARSE_TOKENIZE zip."""
    from idfsplade.export.opensearch import export_sparse_tokenize
    from idfsplade.model import load_sparse_encoder

    work, _ = built
    root = tmp_path_factory.mktemp("model-kinds")
    encoder = load_sparse_encoder("splade-tiny", idf=work / "idf.json", device="cpu")
    encoder.save(str(root / "run" / "model"))
    export_sparse_tokenize(encoder, root / "exported", "tiny")
    idf = str(work / "idf.json")
    return {"alias": ("splade-tiny", idf), "folder": (splade_tiny_path, idf),
            "run": (str(root / "run" / "model"), None), "exported": (str(root / "exported"), None),
            "zip": (str(root / "exported" / "sparse_tokenize.zip"), None)}


@pytest.mark.parametrize("kind", ["alias", "folder", "run", "exported", "zip"])
def test_every_kind_of_model_argument_searches_alike(built, model_arguments, queries, kind, monkeypatch, capsys):
    from idfsplade.cli import main

    work, retriever = built
    model, idf = model_arguments[kind]
    args = ["idfsplade", "search", str(work / "index"), "-q", queries[2], "--k", "8", "--model", model]
    monkeypatch.setattr(sys, "argv", args + (["--idf", idf] if idf else []))
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert (exit_info.value.code or 0) == 0, err
    lines = [line.split("\t") for line in out.strip().splitlines()]
    expected = retriever.search(queries[2], 8)
    assert [line[1] for line in lines] == expected.ids
    np.testing.assert_allclose([float(line[2]) for line in lines], expected.scores, atol=1e-4)


def test_explanations_sum_to_the_scores(built, queries):
    from idfsplade.search.hits import HitBuilder
    from idfsplade.search.index_folder import open_documents

    work, retriever = built
    builder = HitBuilder(retriever, open_documents(work / "index"))
    for text in queries[:10]:
        hits, query = builder.search(text, 10, explain=True)
        assert [h.id for h in hits] == retriever.search(text, 10).ids
        query_tokens = set(retriever.query_encoder.decode(query))
        for hit in hits:
            total = sum(c.contribution for c in hit.explanation)
            assert np.float32(total) == pytest.approx(hit.score, rel=1e-6, abs=1e-6)
            assert {c.token for c in hit.explanation} <= query_tokens
            assert all(c.weight > 0 and c.contribution == pytest.approx(c.idf * c.weight) for c in hit.explanation)
            contributions = [c.contribution for c in hit.explanation]
            assert contributions == sorted(contributions, reverse=True)


def test_hits_carry_documents_with_highlighted_tokens(built, adi_path):
    from idfsplade.data import BeirDataset
    from idfsplade.search.hits import HitBuilder
    from idfsplade.search.index_folder import open_documents

    work, retriever = built
    corpus = {d.id: d for d in BeirDataset(adi_path).iter_corpus()}
    builder = HitBuilder(retriever, open_documents(work / "index"), snippet_chars=80)
    hits, _ = builder.search("information retrieval systems", 5, explain=True)
    assert hits and all(h.title == corpus[h.id].title.replace("\n", " ") for h in hits)
    tokenizer = retriever.query_encoder.tokenizer
    for hit in hits:
        matched = {c.token for c in hit.explanation}
        assert len(hit.snippet) <= 80 + 4  # the window plus "… " / " …"
        plain = hit.snippet.removeprefix("… ").removesuffix(" …")
        assert plain in corpus[hit.id].text.replace("\n", " ")
        for text, spans in ((hit.title, hit.title_highlights), (hit.snippet, hit.highlights)):
            for start, end in spans:
                pieces = tokenizer.encode(text[start:end], add_special_tokens=False).tokens
                assert pieces and pieces[0].removeprefix("##") in {t.removeprefix("##") for t in matched}
    assert any(h.highlights for h in hits)


def test_search_explain_prints_contributions(built, monkeypatch, capsys):
    from idfsplade.cli import main

    work, _ = built
    monkeypatch.setattr(sys, "argv", ["idfsplade", "search", str(work / "index"), "-q", QUERY, "--k", "3", "--explain"])
    with pytest.raises(SystemExit):
        main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    for hit, why in zip(lines[::2], lines[1::2]):
        score = float(hit.split("\t")[2])
        assert why.startswith("\t= ") and float(why.rsplit("= ", 1)[1]) == pytest.approx(score, abs=1e-4)


def test_index_without_documents_prints_ids_and_scores(built, tmp_path, monkeypatch, capsys):
    from idfsplade.cli import main
    from idfsplade.index import InvertedIndex
    from idfsplade.search.index_folder import write_index

    work, retriever = built
    write_index(InvertedIndex.load(work / "index", mmap=False), tmp_path / "bare", query=retriever.query_encoder)
    monkeypatch.setattr(sys, "argv", ["idfsplade", "search", str(tmp_path / "bare"), "-q", QUERY, "--k", "2"])
    with pytest.raises(SystemExit):
        main()
    assert [len(line.split("\t")) for line in capsys.readouterr().out.strip().splitlines()] == [3, 3]


def test_query_side_round_trip_and_errors(built, tmp_path):
    from idfsplade.query.artefact import load_from_folder, save_query_side

    _, retriever = built
    written = save_query_side(retriever.query_encoder, tmp_path / "side")
    side = load_from_folder(tmp_path / "side")
    assert side.tokenizer.as_dict() == written["tokenizer"] and side.idf.as_dict() == written["idf"]
    for text in ["ny", QUERY, "information retrieval " * 400]:
        a, b = side.encoder.encode(text), retriever.query_encoder.encode(text)
        assert np.array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.weights, b.weights, rtol=0, atol=1e-6)  # idf.json keeps 6 decimals

    # the weights cached beside idf.json are used only while idf.json is the one they were read from
    assert (tmp_path / "side" / "idf.weights.npy").exists()
    table = json.loads((tmp_path / "side" / "idf.json").read_text())
    science = retriever.query_encoder.tokenizer.token_to_id("science")
    assert side.encoder.weights[science] == np.float32(table["science"])
    table["science"] = 42.0
    (tmp_path / "side" / "idf.json").write_text(json.dumps(table))
    assert load_from_folder(tmp_path / "side").encoder.weights[science] == 42.0

    (tmp_path / "side" / "idf.json").write_text('{"science": "high"}')
    with pytest.raises(InputError, match=r"side/idf.json, field 'science': weight must be a number"):
        load_from_folder(tmp_path / "side")
    (tmp_path / "side" / "idf.json").write_bytes(b'{"science": 1.0,\n "x": \xff}')
    with pytest.raises(InputError, match=r"side/idf.json: invalid UTF-8"):
        load_from_folder(tmp_path / "side")
    (tmp_path / "side" / "tokenizer.json").write_text("{}")
    with pytest.raises(InputError, match=r"side/tokenizer.json: not a tokenizers tokenizer.json"):
        load_from_folder(tmp_path / "side")
    bad_zip = tmp_path / "sparse_tokenize.zip"
    with zipfile.ZipFile(bad_zip, "w") as z:
        z.writestr("idf.json", "{}")
    with pytest.raises(InputError, match="not a SPARSE_TOKENIZE zip"):
        load_from_folder(bad_zip)


def test_document_store_follows_index_rows_and_checks_the_corpus(tmp_path):
    from idfsplade.data.store import DocumentStore, write_document_store

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(d) for d in [
        {"_id": "a", "title": "Alpha", "text": "first"}, {"_id": "b", "text": "second, no title"},
        {"_id": "c", "title": "Gamma", "text": "third ünïcode"}]).encode())
    info = write_document_store(tmp_path / "store", corpus, ["c", "a"])  # index rows need not follow the corpus
    assert info["documents"]["count"] == 2
    store = DocumentStore(tmp_path / "store")
    assert [(d.id, d.title, d.text) for d in (store.get(0), store.get(1))] == [
        ("c", "Gamma", "third ünïcode"), ("a", "Alpha", "first")]
    with pytest.raises(InputError, match=r"corpus.jsonl: 1 of the index's 2 documents are not in this corpus "
                                         r"\(first: 'zzz'\)"):
        write_document_store(tmp_path / "other", corpus, ["a", "zzz"])


def test_term_weights_are_the_document_vectors_entries():
    import scipy.sparse as sp

    from idfsplade.index import InvertedIndex

    rng = np.random.default_rng(3)
    docs = sp.random(300, 500, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    index = InvertedIndex.from_csr(docs, [f"d{i}" for i in range(300)])
    rows = np.array([0, 7, 7, 150, 299])
    terms = np.concatenate([docs[r].indices[:2] for r in rows] + [[3, 499, 600, -1]])  # 600, -1: out of vocabulary
    dense = docs.toarray()
    expected = np.zeros((len(rows), len(terms)), dtype=np.float32)
    inside = (terms >= 0) & (terms < 500)
    expected[:, inside] = dense[np.ix_(rows, terms[inside])]
    assert np.array_equal(index.term_weights(rows, terms), expected)
    assert np.array_equal(index.term_weights(7, terms), expected[1])
    assert np.count_nonzero(expected) > 0
