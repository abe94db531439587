"""Input files as users have them: invalid UTF-8 is a one-line error naming file and line, a UTF-8
byte-order mark (Windows tools) is read normally, and an empty file says it is empty. Every file read
through the same readers: corpus, queries, qrels, idf.json, training-example JSONL, an index's
tokenizer.json (test_index_folder.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli

from idfsplade.data import iter_corpus, iter_jsonl, iter_queries, load_qrels
from idfsplade.errors import InputError

BOM = b"\xef\xbb\xbf"


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def dataset(folder: Path, corpus: bytes, queries: bytes | None = None, qrels: bytes | None = None) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_bytes(corpus)
    (folder / "queries.jsonl").write_bytes(queries if queries is not None else b'{"_id": "q1", "text": "apple"}\n')
    (folder / "qrels" / "test.tsv").write_bytes(qrels if qrels is not None else b"q1\td1\t1\n")
    return folder


CORPUS = b'{"_id": "d1", "title": "Apples", "text": "red apple pie"}\n{"_id": "d2", "text": "green pears"}\n'


@pytest.mark.parametrize("broken", ["corpus", "queries", "qrels"])
def test_invalid_utf8_is_located_by_evaluate(tmp_path, monkeypatch, capsys, broken):
    files = {"corpus": CORPUS, "queries": b'{"_id": "q1", "text": "apple"}\n', "qrels": b"q1\td1\t1\n"}
    files[broken] = files[broken] + (b'{"_id": "x", "text": "caf\xe9"}\n' if broken != "qrels" else b"q1\td\xe92\t1\n")
    ds = dataset(tmp_path / "ds", files["corpus"], files["queries"], files["qrels"])
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(ds), "--work", str(tmp_path / "w"))
    name = {"corpus": "corpus.jsonl", "queries": "queries.jsonl", "qrels": "qrels/test.tsv"}[broken]
    line = 3 if broken == "corpus" else 2
    assert code == 2
    assert f"{ds / name}, line {line}: invalid UTF-8 (byte " in one_error_line(err)


def test_invalid_utf8_in_the_idf_command(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(CORPUS + b'{"_id": "d3", "text": "\xff\xfe"}\n')
    code, _, err = run_cli(monkeypatch, capsys, "idf", str(corpus), "--out", str(tmp_path / "idf.json"))
    assert code == 2 and f"{corpus}, line 3: invalid UTF-8 (byte 24 of the line" in one_error_line(err)
    assert not (tmp_path / "idf.json").exists()


def test_byte_order_mark_is_read_normally(tmp_path):
    plain = dataset(tmp_path / "plain", CORPUS)
    marked = dataset(tmp_path / "bom", BOM + CORPUS, BOM + b'{"_id": "q1", "text": "apple"}\n',
                     BOM + b"query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert list(iter_corpus(marked / "corpus.jsonl")) == list(iter_corpus(plain / "corpus.jsonl"))
    assert list(iter_queries(marked / "queries.jsonl")) == list(iter_queries(plain / "queries.jsonl"))
    assert load_qrels(marked / "qrels" / "test.tsv") == load_qrels(plain / "qrels" / "test.tsv") == {"q1": {"d1": 1}}
    examples = tmp_path / "examples.jsonl"
    examples.write_bytes(BOM + b'{"qid": "1"}\n')
    assert list(iter_jsonl(examples, ("qid",))) == [(1, {"qid": "1"})]
    # a BOM anywhere but the start is not one: the line is malformed JSON, located
    examples.write_bytes(b'{"qid": "1"}\n' + BOM + b'{"qid": "2"}\n')
    with pytest.raises(InputError, match=r"examples.jsonl, line 2: malformed JSON"):
        list(iter_jsonl(examples))


def test_idf_command_on_a_bom_corpus_equals_the_plain_one(tmp_path, monkeypatch, capsys):
    (tmp_path / "plain.jsonl").write_bytes(CORPUS)
    (tmp_path / "bom.jsonl").write_bytes(BOM + CORPUS)
    for name in ("plain", "bom"):
        code, _, err = run_cli(monkeypatch, capsys, "idf", str(tmp_path / f"{name}.jsonl"), "--out",
                               str(tmp_path / f"{name}-idf.json"))
        assert code == 0, err
    assert (tmp_path / "plain-idf.json").read_bytes() == (tmp_path / "bom-idf.json").read_bytes()


def test_idf_json_with_bom_or_bad_bytes(tmp_path, tokenizer):
    from idfsplade.idf import IdfTable

    (tmp_path / "bom.json").write_bytes(BOM + json.dumps({"apple": 2.5}).encode())
    assert IdfTable.load(tmp_path / "bom.json", tokenizer).weights[tokenizer.convert_tokens_to_ids("apple")] == 2.5
    (tmp_path / "bad.json").write_bytes(b'{"apple": 2.5, "caf\xe9": 1.0}')
    with pytest.raises(InputError, match=r"bad.json: invalid UTF-8"):
        IdfTable.load(tmp_path / "bad.json", tokenizer)
    with pytest.raises(InputError, match=r"expected an idf.json file, got a folder"):
        IdfTable.load(tmp_path, tokenizer)


@pytest.mark.parametrize("content", [b"", b"\n\n", BOM + b"\n"])
def test_empty_corpus_says_so(tmp_path, monkeypatch, capsys, content):
    ds = dataset(tmp_path / "ds", content)
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(ds), "--work", str(tmp_path / "w"))
    assert code == 2
    assert one_error_line(err).endswith(f"{ds / 'corpus.jsonl'}: the corpus is empty (no documents)")
    code, _, err = run_cli(monkeypatch, capsys, "idf", str(ds), "--out", str(tmp_path / "idf.json"))
    assert code == 2 and "the corpus is empty" in one_error_line(err)


def test_empty_queries_and_qrels_say_so(tmp_path, monkeypatch, capsys):
    ds = dataset(tmp_path / "q", CORPUS, queries=b"")
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(ds), "--work", str(tmp_path / "w"))
    assert code == 2 and one_error_line(err).endswith(f"{ds / 'queries.jsonl'}: no queries in this file")
    ds = dataset(tmp_path / "r", CORPUS, qrels=b"query-id\tcorpus-id\tscore\n")
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(ds), "--work", str(tmp_path / "w"))
    assert code == 2 and one_error_line(err).endswith(f"{ds / 'qrels' / 'test.tsv'}: no relevance judgments in this file")


def test_a_folder_where_a_file_belongs(tmp_path):
    (tmp_path / "corpus.jsonl").mkdir()
    with pytest.raises(InputError, match="corpus.jsonl: expected a file, got a folder"):
        list(iter_corpus(tmp_path / "corpus.jsonl"))


def test_damaged_index_meta_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "meta.json").write_bytes(b'{"format": "idfsplade-inverted-index/1", \xff')
    code, _, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "index"), "-q", "x")
    assert code == 2 and "meta.json: unreadable (UnicodeDecodeError): rebuild the index" in one_error_line(err)


def test_idf_command_takes_every_kind_of_model(tmp_path, monkeypatch, capsys, tiny_encoder, adi_path):
    """`idf -m` with an alias, a model folder, a trained run's model (a saved SparseEncoder, whose
    tokenizer sits in a Router sub-folder) and the run's folder itself (its ``model/`` is taken) gives the
    same idf.json; an export folder is a one-line error."""
    from idfsplade.model import resolve_model

    tiny_encoder.save(str(tmp_path / "run" / "model"))
    outputs = []
    for i, model in enumerate(["splade-tiny", resolve_model("splade-tiny"), str(tmp_path / "run" / "model"),
                               str(tmp_path / "run")]):
        code, _, err = run_cli(monkeypatch, capsys, "idf", str(adi_path), "-m", model, "--out", str(tmp_path / f"{i}.json"))
        assert code == 0, err
        outputs.append((tmp_path / f"{i}.json").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2] == outputs[3]
    assert resolve_model(str(tmp_path / "run")) == str(tmp_path / "run" / "model")
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "sparse_tokenize.zip").write_bytes(b"")
    code, _, err = run_cli(monkeypatch, capsys, "idf", str(adi_path), "-m", str(tmp_path / "exported"),
                           "--out", str(tmp_path / "x.json"))
    assert code == 2 and "export opensearch` folder holds no document model" in one_error_line(err)


def test_a_folder_without_a_model_is_one_line_in_every_command(tmp_path, monkeypatch, capsys, adi_path):
    import numpy as np
    import scipy.sparse as sp

    from idfsplade.index import InvertedIndex

    empty = tmp_path / "not-a-model"
    empty.mkdir()
    InvertedIndex.from_csr(sp.csr_matrix(np.ones((2, 30522), dtype=np.float32)), ["a", "b"],
                           info={"model": "splade-tiny"}).save(tmp_path / "index")
    commands = [["search", str(tmp_path / "index"), "-q", "x", "--model", str(empty)],
                ["export", "opensearch", "--model", str(empty), "--out", str(tmp_path / "out")],
                ["idf", str(adi_path), "-m", str(empty), "--out", str(tmp_path / "idf.json")],
                ["encode", str(adi_path), "-m", str(empty), "--out", str(tmp_path / "docs")],
                ["evaluate", str(adi_path), "-m", str(empty), "--no-bm25", "--work", str(tmp_path / "w")]]
    for args in commands:
        code, _, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2, args
        assert one_error_line(err).startswith(f"error: {empty}: "), args
