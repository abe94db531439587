"""BEIR loading: streamed records, title + text, and a located one-line error for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idfsplade.data import BeirDataset, document_text, iter_corpus, iter_queries, load_qrels
from idfsplade.errors import InputError


def write_dataset(root: Path, corpus: list, queries: list, qrels: str) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in queries))
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


GOOD_CORPUS = [{"_id": "1", "title": "Sparse retrieval", "text": "uses an inverted index."},
               {"_id": "2", "text": "no title here"}]
GOOD_QUERIES = [{"_id": "1", "text": "what is sparse retrieval"}, {"_id": "q2", "text": "titles"}]


def test_loads_documents_with_title_plus_text(tmp_path):
    ds = BeirDataset(write_dataset(tmp_path, GOOD_CORPUS, GOOD_QUERIES, "query-id\tcorpus-id\tscore\n1\t1\t1\n"))
    docs = list(ds.iter_corpus())
    assert [d.id for d in docs] == ["1", "2"]
    assert document_text(docs[0]) == "Sparse retrieval uses an inverted index."
    assert document_text(docs[1]) == "no title here"


def test_qrel_with_query_id_equal_to_doc_id_is_kept(tmp_path):
    ds = BeirDataset(write_dataset(tmp_path, GOOD_CORPUS, GOOD_QUERIES,
                                   "query-id\tcorpus-id\tscore\n1\t1\t1\nq2\t2\t2\n"))
    queries, qrels = ds.split_queries("test", doc_ids={"1", "2"})
    assert qrels == {"1": {"1": 1}, "q2": {"2": 2}}
    assert queries == {"1": "what is sparse retrieval", "q2": "titles"}


def test_shipped_adi_keeps_identical_id_pairs(adi_path):
    ds = BeirDataset(adi_path)
    qrels = ds.qrels("test", doc_ids=set(ds.doc_ids()))
    n_lines = sum(1 for line in (adi_path / "qrels" / "test.tsv").read_text().splitlines()[1:] if line.strip())
    assert sum(len(v) for v in qrels.values()) == n_lines == 170


@pytest.mark.parametrize("corpus, message, line, field", [
    ([json.dumps(GOOD_CORPUS[0]), "{not json"], "malformed JSON", 2, None),
    ([{"_id": "1", "title": "t"}], "missing field", 1, "text"),
    ([{"text": "no id"}], "missing field", 1, "_id"),
    ([GOOD_CORPUS[0], GOOD_CORPUS[0]], "duplicate document id '1'", 2, "_id"),
    ([{"_id": "1", "text": 5}], "expected a string", 1, "text"),
    (["[1, 2]"], "expected a JSON object", 1, None),
])
def test_bad_corpus_lines_name_file_line_and_field(tmp_path, corpus, message, line, field):
    root = write_dataset(tmp_path, corpus, GOOD_QUERIES, "")
    with pytest.raises(InputError) as err:
        list(iter_corpus(root / "corpus.jsonl"))
    text = str(err.value)
    assert str(root / "corpus.jsonl") in text and f"line {line}" in text and message in text
    assert "\n" not in text
    if field:
        assert f"field '{field}'" in text


def test_duplicate_query_id(tmp_path):
    root = write_dataset(tmp_path, GOOD_CORPUS, [GOOD_QUERIES[0], GOOD_QUERIES[0]], "")
    with pytest.raises(InputError, match=r"queries.jsonl, line 2, field '_id': duplicate query id '1'"):
        list(iter_queries(root / "queries.jsonl"))


@pytest.mark.parametrize("qrels, message", [
    ("query-id\tcorpus-id\tscore\n1\t99\t1\n", r"test.tsv, line 2, field 'corpus-id': unknown document id '99'"),
    ("query-id\tcorpus-id\tscore\nq9\t1\t1\n", r"test.tsv, line 2, field 'query-id': unknown query id 'q9'"),
    ("1\t1\tx\n", r"test.tsv, line 1, field 'score': score 'x' is not a number"),
    ("1\t1\n", r"test.tsv, line 1: expected 3 tab-separated columns, got 2"),
    ("1\t1\t1\n1\t1\t0\n", r"test.tsv, line 2: duplicate judgment"),
])
def test_bad_qrels(tmp_path, qrels, message):
    root = write_dataset(tmp_path, GOOD_CORPUS, GOOD_QUERIES, qrels)
    with pytest.raises(InputError, match=message):
        load_qrels(root / "qrels" / "test.tsv", query_ids={"1", "q2"}, doc_ids={"1", "2"})


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        BeirDataset(tmp_path / "nope")
    with pytest.raises(InputError, match="file not found"):
        list(iter_corpus(tmp_path / "corpus.jsonl"))
