"""IDF: the paper's formula against a hand count, OpenSearch's idf.json, and missing tokens = 1.0."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from idfsplade.errors import InputError
from idfsplade.idf import MISSING_TOKEN_IDF, IdfTable, compute_document_frequency

CORPUS = ["the cat sat on the mat", "the dog sat", "a cat and a dog and a cat", "[CLS] cat"]


def test_document_frequency_counts_each_token_once_per_document(tokenizer):
    df, n = compute_document_frequency(CORPUS, tokenizer, batch_size=2)
    vocab = tokenizer.get_vocab()
    assert n == 4
    assert df[vocab["cat"]] == 3  # docs 1, 3 and 4; twice in doc 3 counts once
    assert df[vocab["the"]] == 2  # twice in doc 1 counts once
    assert df[vocab["dog"]] == 2
    assert df[vocab["mat"]] == 1
    assert df[vocab["[CLS]"]] == 0  # special tokens excluded, even when written in the text


def test_idf_matches_the_paper_formula_by_hand(tokenizer):
    table = IdfTable.from_corpus(CORPUS, tokenizer)
    vocab = tokenizer.get_vocab()
    n = 4
    for token, df in {"cat": 3, "the": 2, "mat": 1, "zebra": 0}.items():
        expected = math.log(1 + (n - df + 0.5) / (df + 0.5))
        assert table.weights[vocab[token]] == pytest.approx(expected, rel=1e-6)
    assert table.weights[vocab["[SEP]"]] == 0.0


def test_idf_json_round_trip_and_format(tokenizer, tmp_path):
    table = IdfTable.from_corpus(CORPUS, tokenizer)
    path = tmp_path / "idf.json"
    table.save(path)
    raw = json.loads(path.read_text())
    assert raw["cat"] == pytest.approx(math.log(1 + 1.5 / 3.5), rel=1e-5)
    assert "[CLS]" not in raw and "[PAD]" not in raw
    loaded = IdfTable.load(path, tokenizer)
    np.testing.assert_allclose(loaded.weights, table.weights, atol=1e-6)


def test_missing_token_gets_one_as_in_opensearch(tokenizer, tmp_path):
    path = tmp_path / "idf.json"
    path.write_text(json.dumps({"cat": 2.5, "notavocabtoken###": 9.0}))
    table = IdfTable.load(path, tokenizer)
    vocab = tokenizer.get_vocab()
    assert table.weights[vocab["cat"]] == 2.5
    assert table.weights[vocab["dog"]] == MISSING_TOKEN_IDF == 1.0
    assert table.weights[vocab["[CLS]"]] == 0.0


@pytest.mark.parametrize("content, message", [
    ("{bad", "malformed JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"cat": "high"}', "field 'cat': weight must be a number"),
])
def test_bad_idf_json(tokenizer, tmp_path, content, message):
    path = tmp_path / "idf.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        IdfTable.load(path, tokenizer)


def test_idf_counts_the_whole_document_not_the_encoders_512_tokens(tmp_path, tokenizer):
    """The documented choice: df over each document's full text (a corpus statistic), although the
    encoder reads only the first 512 tokens."""
    import json

    from idfsplade.data import BeirDataset
    from idfsplade.idf.cache import corpus_idf

    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"_id": "1", "text": "filler " * 600 + "zebra"}) + "\n" + json.dumps({"_id": "2", "text": "cat"}) + "\n")
    table = corpus_idf(BeirDataset(tmp_path), tokenizer, tmp_path / "idf.json")
    zebra = tokenizer.convert_tokens_to_ids("zebra")
    assert table.weights[zebra] == pytest.approx(np.log1p((2 - 1 + 0.5) / (1 + 0.5)))  # df = 1, not 0
