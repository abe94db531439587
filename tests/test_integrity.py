"""Folders you can trust after a bad copy or a flipped value (issue 18): every folder idfsplade writes
records its files' sizes and sha256; a truncated, value-corrupted or missing file in an index,
encoded-vectors or BM25 folder is one `error:` line naming the file and the command that rebuilds it,
exit 2, no traceback and no results; `idfsplade check` verifies every checksum; an index folder copied
elsewhere answers identically and never falls back to a file outside it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from idfsplade.errors import InputError
from tests.cli_helpers import run_cli

QUERY = "computer programs for information retrieval"


@pytest.fixture(scope="module")
def work(adi_path, tmp_path_factory):
    """`evaluate`'s IDF → encode → index for ADI (splade-tiny, corpus idf): its work folder."""
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, build_sparse_retriever

    folder = tmp_path_factory.mktemp("integrity")
    build_sparse_retriever(SparseModelSpec(model="splade-tiny", idf="corpus"), BeirDataset(adi_path), folder)
    return folder


@pytest.fixture
def index(work, tmp_path):
    """A private copy of the index folder, to damage."""
    return shutil.copytree(work / "index", tmp_path / "index")


@pytest.fixture
def vectors(work, tmp_path):
    return shutil.copytree(work / "docs", tmp_path / "docs")


def _search(capsys, folder, *extra: str) -> tuple[int, str, str]:
    from idfsplade.console import quick_search

    code = quick_search(["search", str(folder), "-q", QUERY, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code: int, out: str, err: str, path, rebuild: str) -> str:
    assert code == 2
    assert out == ""  # never a result from a damaged folder
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert str(path) in err and rebuild in err
    return err


def _truncate(path, keep: int = 100) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def _damage(path, damage: str) -> None:
    """Cut the file in half, delete it, or flip one bit of its middle byte."""
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        path.unlink()
    else:
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1:])


def _as_older_writer(meta_path) -> None:
    """Drop the manifest and the seal, as an index written before them: the structural checks alone."""
    meta = json.loads(meta_path.read_text())
    del meta["files"], meta["meta_sha256"]
    meta_path.write_text(json.dumps(meta))


def _set_value(path, position: int, value) -> None:
    """Overwrite one element of an ``.npy`` file in place (the file keeps its size)."""
    array = np.load(path, mmap_mode="r+")
    array[position] = value
    array.flush()
    del array


# --- what is recorded ------------------------------------------------------------------------------


def test_meta_json_is_sealed(index, capsys, monkeypatch):
    """meta.json holds the manifest, so it carries its own checksum: a changed document id that still
    parses is reported by `check`."""
    text = (index / "meta.json").read_text()
    (index / "meta.json").write_text(text.replace('"doc_ids": ["1"', '"doc_ids": ["7"', 1))
    assert text != (index / "meta.json").read_text()
    err = _one_line_error(*run_cli(monkeypatch, capsys, "check", str(index)), index / "meta.json", "idfsplade index")
    assert "its own checksum does not match" in err


def test_every_file_is_recorded_with_size_and_checksum(work):
    import hashlib

    meta = json.loads((work / "index" / "meta.json").read_text())
    files = meta["files"]
    expected = {p.relative_to(work / "index").as_posix() for p in (work / "index").rglob("*")
                if p.is_file() and p.name != "meta.json" or p.parent.name == "bm25" and p.name == "meta.json"}
    assert set(files) == expected
    assert {"postings_docs.npy", "idf.json", "tokenizer.json", "documents.jsonl", "bm25/meta.json"} <= set(files)
    postings = work / "index" / "postings_docs.npy"
    assert files["postings_docs.npy"]["size"] == postings.stat().st_size
    assert files["postings_docs.npy"]["sha256"] == hashlib.sha256(postings.read_bytes()).hexdigest()
    assert files["postings_docs.npy"]["dtype"] == "<i4"
    assert files["postings_docs.npy"]["shape"] == [meta["nnz"]]
    assert set(json.loads((work / "docs" / "meta.json").read_text())["files"]) == {"data.npy", "indices.npy",
                                                                                   "indptr.npy"}
    assert "bm25s/indices.csc.index.npy" in json.loads((work / "index" / "bm25" / "meta.json").read_text())["files"]


def test_no_machine_path_is_written(work):
    """Neither the vectors' nor the index's metadata holds a path of this machine: the vectors record
    their idf file and corpus relative to their folder, the index by name and checksum."""
    for meta_path in (work / "docs" / "meta.json", work / "index" / "meta.json", work / "index" / "bm25" / "meta.json"):
        text = meta_path.read_text()
        assert str(work) not in text and str(work.parent) not in text, meta_path
    vectors = json.loads((work / "docs" / "meta.json").read_text())
    assert vectors["idf_file"] == "../idf.json"
    info = json.loads((work / "index" / "meta.json").read_text())["info"]
    assert info["idf_file"]["name"] == "idf.json"
    assert info["model"] == "splade-tiny" and info["corpus"] == "corpus.jsonl"


# --- index folder -----------------------------------------------------------------------------------


def test_intact_index_searches_and_checks(index, capsys, monkeypatch):
    code, out, err = _search(capsys, index)
    assert code == 0 and out.count("\n") == 10, err
    code, out, err = run_cli(monkeypatch, capsys, "check", str(index))
    assert code == 0, err
    assert out.startswith(f"{index}: ok (index; ") and "files" in out


@pytest.mark.parametrize("name", ["postings_docs.npy", "postings_weights.npy", "term_ptr.npy",
                                  "documents.offsets.npy"])
def test_truncated_index_file_is_one_line(index, name, capsys, monkeypatch):
    _truncate(index / name)
    err = _one_line_error(*_search(capsys, index), index / name, f"idfsplade index VECTORS --out {index}")
    assert "truncated" in err
    _one_line_error(*run_cli(monkeypatch, capsys, "check", str(index)), index / name, "idfsplade index")


@pytest.mark.parametrize("name", ["postings_docs.npy", "idf.json", "tokenizer.json", "term_ptr.npy"])
def test_missing_index_file_is_one_line(index, name, capsys, monkeypatch):
    (index / name).unlink()
    err = _one_line_error(*_search(capsys, index), index / name, f"idfsplade index VECTORS --out {index}")
    assert "missing" in err
    _one_line_error(*run_cli(monkeypatch, capsys, "check", str(index)), index / name, "idfsplade index")


def test_missing_query_side_never_falls_back_outside_the_folder(index, capsys):
    """Even with its manifest gone too (an older writer), a folder that recorded its own idf.json
    names the missing file instead of loading the model or the idf file it was encoded with."""
    _as_older_writer(index / "meta.json")
    (index / "idf.json").unlink()
    err = _one_line_error(*_search(capsys, index), index / "idf.json", "idfsplade index")
    assert "missing" in err


@pytest.mark.parametrize("value", [10**6, -1])
def test_out_of_range_posting_is_refused_at_search(index, value, capsys, monkeypatch):
    """A postings array with one value out of range: no result, one line; the cheap check runs
    without the manifest (an older folder) too."""
    _set_value(index / "postings_docs.npy", 7, value)
    _as_older_writer(index / "meta.json")
    err = _one_line_error(*_search(capsys, index), index / "postings_docs.npy", "idfsplade index")
    assert f"document row {value} at position 7 is out of range [0, 82)" in err
    _one_line_error(*run_cli(monkeypatch, capsys, "check", str(index)), index / "postings_docs.npy", "idfsplade index")


def test_in_range_flipped_value_is_caught_by_check(index, capsys, monkeypatch):
    """A flip that stays in range cannot be seen without reading every byte: `check` (and
    `serve --check`) verify the sha256."""
    array = np.load(index / "postings_weights.npy")
    _set_value(index / "postings_weights.npy", 3, array[3] * 1.5)
    err = _one_line_error(*run_cli(monkeypatch, capsys, "check", str(index)), index / "postings_weights.npy",
                          "idfsplade index")
    assert "checksum mismatch" in err


def test_non_finite_weight_is_refused_at_search(index, capsys):
    _as_older_writer(index / "meta.json")
    _set_value(index / "postings_weights.npy", 3, np.nan)
    err = _one_line_error(*_search(capsys, index), index / "postings_weights.npy", "idfsplade index")
    assert "non-finite" in err


def test_falling_term_offsets_are_refused(index, capsys):
    _as_older_writer(index / "meta.json")
    _set_value(index / "term_ptr.npy", 2000, 10**6)
    err = _one_line_error(*_search(capsys, index), index / "term_ptr.npy", "idfsplade index")
    assert "offsets fall" in err


def test_serve_check_refuses_a_damaged_index(index, capsys, monkeypatch):
    array = np.load(index / "postings_weights.npy")
    _set_value(index / "postings_weights.npy", 3, array[3] * 1.5)
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served a damaged index"))
    _one_line_error(*run_cli(monkeypatch, capsys, "serve", str(index), "--check"), index / "postings_weights.npy",
                    "idfsplade index")


def test_serve_check_serves_an_intact_index(index, capsys, monkeypatch):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **k: served.append(app))
    code, _, err = run_cli(monkeypatch, capsys, "serve", str(index), "--check")
    assert code == 0 and len(served) == 1
    assert f"{index}: ok (index" in err


def test_copied_index_answers_identically(work, tmp_path, capsys):
    """An index folder copied elsewhere, its sources (vectors, idf.json) deleted, answers byte for byte
    as before: it depends on nothing outside itself."""
    code, before, err = _search(capsys, work / "index", "--explain", "--k", "20")
    assert code == 0, err
    source = tmp_path / "source"
    shutil.copytree(work, source)
    moved = shutil.copytree(source / "index", tmp_path / "elsewhere" / "copy")
    shutil.rmtree(source)
    code, after, err = _search(capsys, moved, "--explain", "--k", "20")
    assert code == 0, err
    assert after == before and after.count("\n") > 20
    code, hybrid, err = _search(capsys, moved, "--hybrid")
    assert code == 0 and hybrid.count("\n") == 10, err


# --- encoded vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "missing", "out_of_range", "falling"])
def test_damaged_vectors_are_one_line(vectors, tmp_path, damage, capsys, monkeypatch):
    name = {"truncate": "indices.npy", "missing": "data.npy", "out_of_range": "indices.npy",
            "falling": "indptr.npy"}[damage]
    if damage == "truncate":
        _truncate(vectors / name)
    elif damage == "missing":
        (vectors / name).unlink()
    elif damage == "out_of_range":
        _set_value(vectors / name, 5, 10**7)
    else:
        _set_value(vectors / name, 3, 10**7)
    if damage in ("out_of_range", "falling"):  # also without the manifest's size check
        _as_older_writer(vectors / "meta.json")
    out = tmp_path / "index-from-damaged"
    _one_line_error(*run_cli(monkeypatch, capsys, "index", str(vectors), "--out", str(out), "--no-documents"),
                    vectors / name, f"idfsplade encode DATASET --out {vectors}")
    assert not out.exists()
    _one_line_error(*run_cli(monkeypatch, capsys, "check", str(vectors)), vectors / name, "idfsplade encode")


def test_vectors_check_catches_a_flip_and_passes_intact(vectors, capsys, monkeypatch):
    code, out, _ = run_cli(monkeypatch, capsys, "check", str(vectors))
    assert code == 0 and "ok (encoded vectors; 3 files" in out
    data = np.load(vectors / "data.npy")
    _set_value(vectors / "data.npy", 11, data[11] + 1)
    err = _one_line_error(*run_cli(monkeypatch, capsys, "check", str(vectors)), vectors / "data.npy",
                          "idfsplade encode")
    assert "checksum mismatch" in err


# --- BM25 side-index ---------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "missing", "out_of_range", "flip"])
def test_damaged_bm25_side_index(index, damage, capsys, monkeypatch):
    bm25 = index / "bm25"
    name = "bm25s/indices.csc.index.npy"
    if damage == "truncate":
        _truncate(bm25 / name)
    elif damage == "missing":
        name = "bm25s/vocab.index.json"
        (bm25 / name).unlink()
    elif damage == "out_of_range":
        _set_value(bm25 / name, 4, 10**6)
    else:
        name = "bm25s/data.csc.index.npy"
        data = np.load(bm25 / name)
        _set_value(bm25 / name, 4, data[4] + 0.5)
    if damage == "out_of_range":  # the side-index's own bounds check, without the manifests
        for meta_path in (index / "meta.json", bm25 / "meta.json"):
            _as_older_writer(meta_path)
    if damage == "flip":  # in range: only the checksum sees it
        code, out, err = _search(capsys, index, "--hybrid")
        assert code == 0, err
    else:
        _one_line_error(*_search(capsys, index, "--hybrid"), bm25 / name, f"idfsplade index VECTORS --out {index}")
    _one_line_error(*run_cli(monkeypatch, capsys, "check", str(index)), bm25 / name, "idfsplade index")
    _one_line_error(*run_cli(monkeypatch, capsys, "check", str(bm25)), bm25 / name, "idfsplade index")


# --- model folders -----------------------------------------------------------------------------------


def test_model_folder_manifest(tmp_path, capsys, monkeypatch):
    from idfsplade.integrity import write_manifest_file

    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"\0" * 1000)
    (model / "modules.json").write_text("[]")
    (tmp_path / "run" / "config.json").write_text("{}")
    write_manifest_file(model)
    code, out, _ = run_cli(monkeypatch, capsys, "check", str(tmp_path / "run"))
    assert code == 0 and "ok (training run's model; 2 files, 1,002 bytes" in out
    (model / "model.safetensors").write_bytes(b"\0" * 999 + b"\1")
    err = _one_line_error(*run_cli(monkeypatch, capsys, "check", str(model)), model / "model.safetensors",
                          "idfsplade train")
    assert "checksum mismatch" in err
    (model / "modules.json").unlink()
    _one_line_error(*run_cli(monkeypatch, capsys, "check", str(model)), model / "modules.json", "idfsplade train")


def test_check_names_what_it_cannot_check(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(monkeypatch, capsys, "check", str(tmp_path))
    assert code == 2 and "not a folder idfsplade writes" in err and err.count("\n") == 1
    with pytest.raises(InputError, match="not a folder"):
        from idfsplade.check import check_folder

        check_folder(tmp_path / "nothing")


def test_packaged_model_verifies_against_its_sha256sums(capsys, monkeypatch):
    from idfsplade.model import resolve_model

    folder = resolve_model("idfsplade-tiny")
    code, out, err = run_cli(monkeypatch, capsys, "check", folder)
    assert code == 0 and "ok (model; 18 files" in out, err


# --- any file, any of the three kinds of damage ----------------------------------------------------------

_FILES = ["term_ptr.npy", "postings_docs.npy", "postings_weights.npy", "tokenizer.json", "idf.json",
          "idf.weights.npy", "idf.weights.json", "documents.jsonl", "documents.offsets.npy", "bm25/meta.json",
          "bm25/doc_ids.json", "bm25/bm25s/data.csc.index.npy", "bm25/bm25s/indices.csc.index.npy",
          "bm25/bm25s/indptr.csc.index.npy", "bm25/bm25s/vocab.index.json", "bm25/bm25s/params.index.json",
          "meta.json"]


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
@pytest.mark.parametrize("name", _FILES)
def test_any_damage_to_any_file_is_one_line_or_harmless(index, name, damage, capsys, monkeypatch):
    """Every file of the folder, cut in half, deleted, or with one byte flipped in its middle: search
    (plain and hybrid) either answers exactly as the intact folder did or fails with one line; never
    a traceback. `check` reports every one of them (meta.json, which holds the manifest, by its own
    checksum)."""
    code, intact, _ = _search(capsys, index, "--hybrid")
    assert code == 0
    code, intact_plain, _ = _search(capsys, index)
    path = index / name
    _damage(path, damage)
    for extra, before in ((("--hybrid",), intact), ((), intact_plain)):
        code, out, err = _search(capsys, index, *extra)
        assert "Traceback" not in err
        if code == 0:
            assert out == before, (name, damage, extra)
        else:
            assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    code, out, err = run_cli(monkeypatch, capsys, "check", str(index))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (name, damage, out, err)


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
@pytest.mark.parametrize("name", ["data.npy", "indices.npy", "indptr.npy", "meta.json"])
def test_any_damage_to_encoded_vectors_is_one_line(vectors, tmp_path, name, damage, capsys, monkeypatch):
    """`index` reads the vectors whole: any damage is one line (or, for a flip, possibly a changed
    value it cannot see), and `check` reports every one."""
    path = vectors / name
    _damage(path, damage)
    code, out, err = run_cli(monkeypatch, capsys, "index", str(vectors), "--out", str(tmp_path / "ix"), "--no-documents")
    assert "Traceback" not in err
    assert code == 2 and err.count("\n") == 1 or (code == 0 and damage == "flip"), (code, err)
    code, _, err = run_cli(monkeypatch, capsys, "check", str(vectors))
    assert code == 2 and err.count("\n") == 1, err


def test_service_refuses_an_out_of_range_posting_before_listening(index):
    """Without --check too: the service computes the term bounds at load, and with them checks every
    posting's row, so a damaged index fails before the first request."""
    from idfsplade.serve import ServeConfig, load_app

    _as_older_writer(index / "meta.json")
    _set_value(index / "postings_docs.npy", 11, 999)
    with pytest.raises(InputError, match="postings_docs.npy: document row 999 at position 11 is out of range"):
        load_app(ServeConfig(index))
