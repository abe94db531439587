"""Every backend behind `idfsplade index/search/serve`, and encoding in shards.

ADI (82 documents) encoded by SPLADE-tiny with ADI's idf, through the CLI: `index --backend seismic|milvus`
folders record their backend and knobs, `search` and the service open what they record without
importing torch and return the exact index's hits; four `encode --shard i/4` runs merged by `index` give
the unsharded vectors bit for bit; bad knobs, shards and servers are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cli_helpers import run_cli

QUERY = "What is information science? Give definitions where possible."
CHUNK = "8"  # 82 documents in 11 pieces: four shards of 2-3 pieces each


@pytest.fixture(scope="module")
def encoded(adi_path, tmp_path_factory):
    """`encode` once unsharded and once as four shards (same --chunk): ``(work, [unsharded, shard0..3])``."""
    from idfsplade.cli import main

    work = tmp_path_factory.mktemp("adi-shards")
    monkeypatch = pytest.MonkeyPatch()
    outs = [work / "docs"] + [work / f"docs-{i}" for i in range(4)]
    for i, out in enumerate(outs):
        shard = [] if i == 0 else ["--shard", f"{i - 1}/4"]
        monkeypatch.setattr(sys, "argv", ["idfsplade", "encode", str(adi_path), "-m", "splade-tiny", "--out", str(out),
                                          "--chunk", CHUNK, *shard])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert (exit_info.value.code or 0) == 0
    monkeypatch.undo()
    return work, outs


def _cli(monkeypatch, capsys, *args):
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    return out


def test_four_shards_merge_bit_identically(encoded, monkeypatch, capsys):
    from idfsplade.index import InvertedIndex
    from idfsplade.vectors import load_csr

    work, (whole, *shards) = encoded
    sizes = [json.loads((s / "meta.json").read_text())["shard"] for s in shards]
    assert [(m["start"], m["stop"]) for m in sizes] == [(0, 16), (16, 40), (40, 64), (64, 82)]
    _cli(monkeypatch, capsys, "index", str(whole), "--out", str(work / "index-whole"))
    _cli(monkeypatch, capsys, "index", *map(str, reversed(shards)), "--out", str(work / "index-shards"))
    a, b = InvertedIndex.load(work / "index-whole"), InvertedIndex.load(work / "index-shards")
    assert a.doc_ids == b.doc_ids == load_csr(whole)[1]
    for name in ("term_ptr", "postings_docs", "postings_weights"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    outs = [_cli(monkeypatch, capsys, "search", str(work / f"index-{n}"), "-q", QUERY) for n in ("whole", "shards")]
    assert outs[0] == outs[1] and outs[0].count("\n") == 10


@pytest.mark.parametrize("drop, message", [
    ([1], "missing shard(s) 1/4 of 4"),
    ([], "given twice"),
])
def test_index_refuses_missing_or_overlapping_shards(encoded, drop, message, monkeypatch, capsys):
    work, (_, *shards) = encoded
    given = [s for i, s in enumerate(shards) if i not in drop] + ([] if drop else [shards[2]])
    code, _, err = run_cli(monkeypatch, capsys, "index", *map(str, given), "--out", str(work / "never"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_index_refuses_shards_of_other_inputs(encoded, adi_path, tmp_path, monkeypatch, capsys):
    work, (whole, *shards) = encoded
    other = tmp_path / "docs-1"
    # the same split at another truncation: the key (model, corpus, max_length, pruning) differs
    _cli(monkeypatch, capsys, "encode", str(adi_path), "-m", "splade-tiny", "--out", str(other), "--chunk", CHUNK,
         "--shard", "1/4", "--max-length", "64")
    code, _, err = run_cli(monkeypatch, capsys, "index", str(shards[0]), str(other), str(shards[2]), str(shards[3]),
                           "--out", str(work / "never"))
    assert code == 2 and "shard of different inputs" in err and "max_length" in err
    code, _, err = run_cli(monkeypatch, capsys, "index", str(whole), str(shards[1]), "--out", str(work / "never"))
    assert code == 2 and "not a shard" in err


@pytest.mark.parametrize("shard", ["4/4", "x", "1/0", "-1/2"])
def test_bad_shard_is_one_line(shard, monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "encode", "datasets/adi", "--out", str(tmp_path / "d"), "--shard", shard)
    assert code == 2 and "--shard takes I/N" in err


def _search_in_fresh_process(index_dir, query, *extra):
    code = """
        import json, sys
        from idfsplade.console import main
        sys.argv = ["idfsplade", "search", *sys.argv[1:]]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        print(json.dumps([m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]),
              file=sys.stderr)
    """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(index_dir), "-q", query, *extra],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("backend, knobs", [("seismic", ["--backend-opt", "heap_factor=0.5",
                                                         "--backend-opt", "summary_energy=1.0"]),
                                            ("milvus", [])])
def test_backend_folder_searches_like_exact_without_torch(backend, knobs, encoded, monkeypatch, capsys):
    pytest.importorskip({"seismic": "seismic", "milvus": "milvus_lite"}[backend])
    work, (whole, *_) = encoded
    exact_dir = work / "index-exact"
    if not exact_dir.exists():
        _cli(monkeypatch, capsys, "index", str(whole), "--out", str(exact_dir))
    folder = work / f"index-{backend}"
    code, out, err = run_cli(monkeypatch, capsys, "index", str(whole), "--out", str(folder), "--backend", backend, *knobs)
    assert code == 0, err
    assert out == "" and f"({backend}): 82 docs" in " ".join(err.split())  # and no backend's build log
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["backend"]["name"] == backend and meta["n_docs"] == 82
    if backend == "seismic":
        assert meta["backend"]["options"] == {"heap_factor": 0.5, "summary_energy": 1.0}
    assert (folder / meta["backend"]["folder"]).is_dir() and (folder / "idf.json").is_file()
    result = _search_in_fresh_process(folder, QUERY, "--k", "5")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    exact = [line.split("\t") for line in _cli(monkeypatch, capsys, "search", str(exact_dir), "-q", QUERY,
                                               "--k", "5").strip().splitlines()]
    assert [line[1] for line in lines] == [line[1] for line in exact]
    np.testing.assert_allclose([float(x[2]) for x in lines], [float(x[2]) for x in exact], rtol=2e-3)
    assert all(len(line) == 5 and line[3] for line in lines)  # titles and snippets from the document store
    # hybrid search opens the BM25 side-index beside whatever backend
    hybrid = [_cli(monkeypatch, capsys, "search", str(d), "-q", QUERY, "--k", "5", "--hybrid") for d in (folder, exact_dir)]
    fused = [[line.split("\t")[1] for line in h.splitlines()] for h in hybrid]
    assert fused[0] == fused[1] and len(fused[0]) == 5


def test_service_opens_a_seismic_folder_without_torch(encoded, monkeypatch, capsys):
    pytest.importorskip("seismic")
    pytest.importorskip("fastapi")
    work, (whole, *_) = encoded
    folder = work / "index-seismic-serve"
    _cli(monkeypatch, capsys, "index", str(whole), "--out", str(folder), "--backend", "seismic",
         "--backend-opt", "summary_energy=1.0")
    code = """
        import json, sys
        from fastapi.testclient import TestClient
        from idfsplade.serve import ServeConfig, load_app
        client = TestClient(load_app(ServeConfig(sys.argv[1], hybrid=True)))
        answer = client.post("/search", json={"query": sys.argv[2], "k": 5}).json()
        print(json.dumps({"ids": answer["ids"], "documents": client.get("/health").json()["documents"],
                          "heavy": [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]}))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(folder), QUERY], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["heavy"] == [] and out["documents"] == 82 and len(out["ids"]) == 5


@pytest.mark.parametrize("args, message", [
    (["--backend", "nope"], "unknown backend 'nope'; choose one of exact, seismic, milvus, lucene"),
    (["--backend", "seismic", "--backend-opt", "heap=1"], "backend 'seismic' has no option 'heap' (accepted: "),
    (["--backend", "seismic", "--backend-opt", "heap_factor=high"], "option 'heap_factor' takes a float, got 'high'"),
    (["--backend", "exact", "--backend-opt", "x=1"], "backend 'exact' has no option 'x' (accepted: none)"),
    (["--backend", "seismic", "--milvus-uri", "http://localhost:19530"], "--milvus-uri, --milvus-token and "
                                                                         "--milvus-db need --backend milvus"),
    (["--backend", "milvus", "--milvus-uri", "http://127.0.0.1:9"], "cannot use the Milvus server at "
                                                                    "http://127.0.0.1:9"),
])
def test_backend_errors_are_one_line(encoded, args, message, monkeypatch, capsys):
    if "--milvus-uri" in args and "milvus" in args[1]:
        pytest.importorskip("milvus_lite")
    work, (whole, *_) = encoded
    code, _, err = run_cli(monkeypatch, capsys, "index", str(whole), "--out", str(work / "never"), *args)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (work / "never").exists()


def test_missing_extra_is_one_line(encoded, monkeypatch, capsys):
    """A folder of a backend whose extra is not installed: the error names the extra."""
    import idfsplade.index.seismic as seismic_module
    from idfsplade.errors import InputError

    work, (whole, *_) = encoded
    folder = work / "index-fake-seismic"
    folder.mkdir(exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"format": "idfsplade-backend-index/1", "n_docs": 0, "vocab_size": 1,
                                                  "doc_ids": [], "info": {},
                                                  "backend": {"name": "seismic", "folder": "seismic", "options": {}}}))

    def missing():
        raise InputError("the seismic backend needs pyseismic-lsr: pip install 'idfsplade[seismic]' (No module)")

    monkeypatch.setattr(seismic_module, "require", missing)
    code, _, err = run_cli(monkeypatch, capsys, "search", str(folder), "-q", "x")
    assert code == 2 and "pip install 'idfsplade[seismic]'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(monkeypatch, capsys, "index", str(whole), "--out", str(work / "never"), "--backend", "seismic")
    assert code == 2 and "pip install 'idfsplade[seismic]'" in " ".join(err.split()) and not (work / "never").exists()


def test_milvus_index_upsert_and_delete_keep_documents_and_bm25(encoded, adi_path, tmp_path, monkeypatch, capsys):
    pytest.importorskip("milvus_lite")
    from idfsplade.vectors import load_csr, save_csr

    work, (whole, *_) = encoded
    folder = tmp_path / "index-milvus"
    _cli(monkeypatch, capsys, "index", str(whole), "--out", str(folder), "--backend", "milvus")
    before = [line.split("\t") for line in _cli(monkeypatch, capsys, "search", str(folder), "-q", QUERY).splitlines()]
    top, second = before[0][1], before[1][1]
    # delete the best hit: gone from the sparse and the hybrid results, and from the counts
    code, _, err = run_cli(monkeypatch, capsys, "delete", str(folder), top)
    assert code == 0 and "1 deleted" in " ".join(err.split())
    after = [line.split("\t") for line in _cli(monkeypatch, capsys, "search", str(folder), "-q", QUERY).splitlines()]
    assert after[0][1] == second and top not in [x[1] for x in after]
    hybrid = _cli(monkeypatch, capsys, "search", str(folder), "-q", QUERY, "--hybrid", "--k", "82")
    assert top not in [line.split("\t")[1] for line in hybrid.splitlines()]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["n_docs"] == 81 and meta["info"]["documents"]["count"] == 81 and top not in meta["doc_ids"]
    # upsert it back under a new id with a new title: found again, with its old score, title from --corpus
    docs, ids, _ = load_csr(whole)
    row = ids.index(top)
    save_csr(tmp_path / "new-docs", docs[row:row + 1], ["new-1"], extra={"provenance": {"model": "splade-tiny"}})
    original = next(json.loads(line) for line in (adi_path / "corpus.jsonl").read_text().splitlines()
                    if json.loads(line)["_id"] == top)
    (tmp_path / "new.jsonl").write_text(json.dumps({**original, "_id": "new-1", "title": "A new title"}) + "\n")
    code, _, err = run_cli(monkeypatch, capsys, "upsert", str(folder), str(tmp_path / "new-docs"),
                           "--corpus", str(tmp_path / "new.jsonl"))
    assert code == 0 and "1 added, 0 replaced" in " ".join(err.split()), err
    again = [line.split("\t") for line in _cli(monkeypatch, capsys, "search", str(folder), "-q", QUERY).splitlines()]
    assert again[0][1] == "new-1" and again[0][2] == before[0][2] and again[0][3] == "A new title"
    hybrid = _cli(monkeypatch, capsys, "search", str(folder), "-q", QUERY, "--hybrid", "--k", "82")
    assert "new-1" in [line.split("\t")[1] for line in hybrid.splitlines()]
    # errors: unknown id, an index of another backend
    code, _, err = run_cli(monkeypatch, capsys, "delete", str(folder), "no-such-doc")
    assert code == 2 and "no document 'no-such-doc' in the index" in " ".join(err.split())
    exact_dir = tmp_path / "index-exact"
    _cli(monkeypatch, capsys, "index", str(whole), "--out", str(exact_dir))
    code, _, err = run_cli(monkeypatch, capsys, "delete", str(exact_dir), "1")
    assert code == 2 and "only a milvus-backed index is updated in place (this one is exact)" in " ".join(err.split())


@pytest.mark.slow
def test_lucene_folder_through_the_commands(encoded, monkeypatch, capsys):
    """Lucene through `index`/`search` (slow: a JVM per process). Pyserini imports torch, so a lucene
    folder is the one backend whose search is not torch-free (docs/backends.md)."""
    from idfsplade.index.lucene import require

    try:
        require()
    except Exception as exc:  # noqa: BLE001 - pyserini or Java 21 missing
        pytest.skip(str(exc))
    work, (whole, *_) = encoded
    folder = work / "index-lucene"
    _cli(monkeypatch, capsys, "index", str(whole), "--out", str(folder), "--backend", "lucene",
         "--backend-opt", "scale=1000")
    exact_dir = work / "index-exact-lucene"
    _cli(monkeypatch, capsys, "index", str(whole), "--out", str(exact_dir))
    result = _search_in_fresh_process(folder, QUERY, "--k", "5")
    assert result.returncode == 0, result.stderr
    exact = _cli(monkeypatch, capsys, "search", str(exact_dir), "-q", QUERY, "--k", "5")
    assert [x.split("\t")[1] for x in result.stdout.splitlines()] == [x.split("\t")[1] for x in exact.splitlines()]
