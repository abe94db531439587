"""OpenSearch export: the TorchScript doc model (run the way ML-Commons runs it: the zip's tokenizer.json,
one text at a time, and also padded batches) reproduces ``DocumentEncoder``; the tokenizer zip's idf.json
is the model's query route; registration bodies match the files they describe."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from typer.testing import CliRunner

from idfsplade.cli.app import app
from idfsplade.errors import InputError
from idfsplade.export.opensearch import export_sparse_tokenize, sha256_file
from idfsplade.idf import IdfTable
from idfsplade.model import DocumentEncoder, model_query_encoder, query_weights

import idfsplade.cli.export  # noqa: F401  (registers `idfsplade export`)

# The two TracerWarnings of the export are explained in trace_document_model.
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")

TEXTS = ["ny",
         "Currently New York is rainy.",
         "The weather in New York City is sunny and warm today, with clear skies over Manhattan. U.S. news...",
         "information retrieval " * 400]  # > 512 tokens: truncated by the zip's tokenizer.json


@pytest.fixture(scope="module")
def exported(tmp_path_factory, adi_idf):
    """``idfsplade export opensearch --model splade-tiny --idf adi.json`` (the model of ``tiny_encoder``)."""
    work = tmp_path_factory.mktemp("opensearch-export")
    adi_idf.save(work / "adi-idf.json")
    result = CliRunner().invoke(app, ["export", "opensearch", "--model", "splade-tiny", "--idf",
                                      str(work / "adi-idf.json"), "--out", str(work / "out")])
    assert result.exit_code == 0, result.output
    return work / "out"


def _registration(out, stem):
    return json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))


def test_zips_hold_what_ml_commons_loads(exported):
    with zipfile.ZipFile(exported / "sparse_encoding.zip") as z:
        assert sorted(z.namelist()) == ["model.pt", "tokenizer.json"]
        assert json.loads(z.read("tokenizer.json"))["truncation"]["max_length"] == 512
    with zipfile.ZipFile(exported / "sparse_tokenize.zip") as z:
        assert sorted(z.namelist()) == ["idf.json", "tokenizer.json"]


def test_torchscript_matches_document_encoder(exported, tiny_encoder, tmp_path):
    with zipfile.ZipFile(exported / "sparse_encoding.zip") as z:
        z.extractall(tmp_path)
    traced = torch.jit.load(str(tmp_path / "model.pt"))
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    expected = DocumentEncoder(tiny_encoder).encode(TEXTS).toarray()

    with torch.no_grad():
        # ML-Commons: one text per call, special tokens added, truncation from tokenizer.json.
        singles = []
        for text in TEXTS:
            enc = tokenizer.encode(text)
            singles.append(traced({"input_ids": torch.tensor([enc.ids]),
                                   "attention_mask": torch.tensor([enc.attention_mask])})["output"][0].numpy())
        # A padded batch (the short texts: padding to 512 would only cost time).
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        encs = tokenizer.encode_batch(TEXTS[:3])
        batch = traced({"input_ids": torch.tensor([e.ids for e in encs]),
                        "attention_mask": torch.tensor([e.attention_mask for e in encs])})["output"].numpy()

    assert sum(encs[0].attention_mask) == 3 < len(encs[0].ids)  # [CLS] ny [SEP], then padding
    assert len(tokenizer.encode(TEXTS[-1]).ids) == 512
    diff_single = np.abs(np.stack(singles) - expected).max()
    diff_batch = np.abs(batch - expected[:3]).max()
    print(f"max |torchscript - DocumentEncoder|: single {diff_single:.2e}, padded batch {diff_batch:.2e}")
    assert diff_single < 1e-4 and diff_batch < 1e-4
    assert (expected > 0).sum(axis=1).min() > 3
    assert (batch[:, [101, 102, 0]] == 0).all()  # [CLS], [SEP], [PAD] zeroed


def test_idf_json_round_trips_to_query_weights(exported, tiny_encoder, tokenizer):
    weights, _ = query_weights(tiny_encoder)
    with zipfile.ZipFile(exported / "sparse_tokenize.zip") as z:
        table = json.loads(z.read("idf.json"))
    assert len(table) == len(tokenizer) - len(set(tokenizer.all_special_ids))
    np.testing.assert_allclose(IdfTable.from_dict(table, tokenizer).weights, weights, atol=1e-6)


def test_tokenize_zip_weights_queries_like_query_encoder(exported, tiny_encoder, tmp_path):
    """Emulate ML-Commons' SparseTokenizerModel on the zip: encode, unique ids, decode each id with
    special tokens skipped (empty -> dropped), weight = idf.get(token, 1.0)."""
    with zipfile.ZipFile(exported / "sparse_tokenize.zip") as z:
        z.extractall(tmp_path)
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    idf = json.loads((tmp_path / "idf.json").read_text(encoding="utf-8"))
    query_encoder = model_query_encoder(tiny_encoder)
    for text in ["What's the weather in NY now?", "U.S. computer-based retrieval... of documents"]:
        tokens = {tokenizer.decode([i], skip_special_tokens=True) for i in tokenizer.encode(text).ids}
        ml_commons = {t: idf.get(t, 1.0) for t in tokens if t}
        ours = query_encoder.decode(query_encoder.encode(text))
        assert ml_commons.keys() == ours.keys()
        for token, weight in ours.items():
            assert ml_commons[token] == pytest.approx(weight, abs=1e-6)


@pytest.mark.parametrize("stem,function_name", [("sparse_encoding", "SPARSE_ENCODING"),
                                                ("sparse_tokenize", "SPARSE_TOKENIZE")])
def test_registration_matches_zip(exported, stem, function_name):
    body = _registration(exported, stem)
    zip_path = exported / f"{stem}.zip"
    assert body["function_name"] == function_name
    assert body["model_format"] == "TORCH_SCRIPT"
    assert body["model_content_size_in_bytes"] == zip_path.stat().st_size
    assert body["model_content_hash_value"] == sha256_file(zip_path)
    assert len(body["model_content_hash_value"]) == 64
    assert body["model_config"]["embedding_dimension"] == 30522
    assert body["model_config"]["framework_type"] == "huggingface_transformers"
    assert body["name"] == {"sparse_encoding": "splade-tiny-doc", "sparse_tokenize": "splade-tiny-tokenizer"}[stem]
    print(f"{stem}.zip: {body['model_content_size_in_bytes']:,} bytes")


def test_tokenize_export_is_reproducible_and_atomic(exported, tiny_encoder, tmp_path):
    again = export_sparse_tokenize(tiny_encoder, tmp_path, "splade-tiny-tokenizer")
    assert again.registration["model_content_hash_value"] == \
        _registration(exported, "sparse_tokenize")["model_content_hash_value"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sparse_tokenize.json", "sparse_tokenize.zip"]


def test_cli_rejects_missing_idf(tmp_path):
    result = CliRunner().invoke(app, ["export", "opensearch", "--idf", str(tmp_path / "none.json"),
                                      "--out", str(tmp_path / "out")])
    assert isinstance(result.exception, InputError)
    assert not (tmp_path / "out").exists()
