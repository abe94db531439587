"""The inference-free encoder: query = idf of unique tokens (no special tokens, missing = 1.0), doc =
max-pooled log(1+relu(logits)) with special tokens zeroed; checked against raw masked-LM logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM

from idfsplade.errors import InputError
from idfsplade.idf import IdfTable
from idfsplade.model import DocumentEncoder, build_inference_free_encoder, load_sparse_encoder, model_query_encoder
from idfsplade.vectors import PruneConfig

QUERY = "What's the weather in ny now?"
DOCS = ["Currently New York is rainy.",
        "The weather in New York City is sunny and warm today, with clear skies over Manhattan and Brooklyn.",
        "ny"]


@pytest.fixture(scope="module")
def reference_doc_vectors(splade_tiny_path, tokenizer):
    """w[j] = max over non-pad positions of log(1 + relu(logit)), special tokens 0: by hand, per text."""
    mlm = AutoModelForMaskedLM.from_pretrained(splade_tiny_path).eval()
    vectors = []
    with torch.no_grad():
        for text in DOCS:  # one text at a time: no padding at all in the reference
            batch = tokenizer(text, return_tensors="pt")
            logits = mlm(**batch).logits[0]
            w = torch.log1p(torch.relu(logits)).max(dim=0).values
            w[tokenizer.all_special_ids] = 0
            vectors.append(w.numpy())
    return np.stack(vectors)


def test_document_vectors_match_raw_logits(tiny_encoder, reference_doc_vectors):
    encoded = DocumentEncoder(tiny_encoder, batch_size=2).encode(DOCS).toarray()  # padded batches
    np.testing.assert_allclose(encoded, reference_doc_vectors, atol=1e-5)
    assert (encoded > 0).sum(axis=1).min() > 5


def test_query_vector_is_idf_of_unique_tokens_without_specials(tiny_encoder, tokenizer, adi_idf):
    encoder = model_query_encoder(tiny_encoder)
    query = encoder.encode("the cat and the cat [SEP]")
    ids = tokenizer("the cat and the cat [SEP]", add_special_tokens=False)["input_ids"]
    expected_ids = sorted(set(ids) - set(tokenizer.all_special_ids))
    assert query.ids.tolist() == expected_ids
    np.testing.assert_allclose(query.weights, adi_idf.weights[expected_ids])
    # Same vector as sentence-transformers' own query route.
    st = tiny_encoder.encode_query(["the cat and the cat"], convert_to_tensor=True).to_dense()[0].numpy()
    assert sorted(np.flatnonzero(st).tolist()) == sorted(set(tokenizer("the cat and the cat",
                                                                        add_special_tokens=False)["input_ids"]))
    np.testing.assert_allclose(st[np.flatnonzero(st)], adi_idf.weights[np.flatnonzero(st)])


def test_missing_idf_token_weighs_one(splade_tiny_path, tokenizer, tmp_path):
    path = tmp_path / "idf.json"
    path.write_text(json.dumps({"weather": 3.0}))
    model = build_inference_free_encoder(splade_tiny_path, path)
    query = model_query_encoder(model).encode("weather today")
    vocab = tokenizer.get_vocab()
    assert dict(zip(query.ids.tolist(), query.weights.tolist())) == {vocab["weather"]: 3.0, vocab["today"]: 1.0}


def test_offline_golden_score_equals_hand_computation(tiny_encoder, tokenizer, adi_idf, reference_doc_vectors):
    """The offline twin of sentence-transformers' doc-v2-distill golden test, on the packaged model."""
    q_ids = sorted(set(tokenizer(QUERY, add_special_tokens=False)["input_ids"]))
    expected = np.array([float(np.dot(adi_idf.weights[q_ids], d[q_ids])) for d in reference_doc_vectors])
    assert expected.max() > 0  # the long document shares 'weather', 'in', 'ny'...
    st_scores = tiny_encoder.similarity(tiny_encoder.encode_query([QUERY]), tiny_encoder.encode_document(DOCS))
    np.testing.assert_allclose(st_scores.numpy()[0], expected, rtol=1e-4, atol=1e-4)
    q = model_query_encoder(tiny_encoder).encode(QUERY)
    docs = DocumentEncoder(tiny_encoder).encode(DOCS)
    ours = docs[:, q.ids].toarray() @ q.weights
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_save_and_reload_unchanged(tiny_encoder, tmp_path):
    tiny_encoder.save(str(tmp_path / "model"))
    reloaded = load_sparse_encoder(str(tmp_path / "model"))
    a = tiny_encoder.similarity(tiny_encoder.encode_query([QUERY]), tiny_encoder.encode_document(DOCS))
    b = reloaded.similarity(reloaded.encode_query([QUERY]), reloaded.encode_document(DOCS))
    torch.testing.assert_close(a, b)


def test_idf_override_on_a_saved_model(tiny_encoder, tokenizer, tmp_path):
    tiny_encoder.save(str(tmp_path / "model"))
    table = IdfTable(np.full(len(tokenizer), 2.0, dtype=np.float32), tokenizer)
    model = load_sparse_encoder(str(tmp_path / "model"), idf=table)
    q = model_query_encoder(model).encode("weather")
    assert q.weights.tolist() == [2.0]


def test_pruning_at_encode_time(tiny_encoder):
    full = DocumentEncoder(tiny_encoder).encode(DOCS)
    top3 = DocumentEncoder(tiny_encoder, prune=PruneConfig(top_k=3)).encode(DOCS)
    assert np.diff(top3.indptr).tolist() == [3, 3, 3]
    for row in range(len(DOCS)):
        kept = set(top3[row].indices)
        dense = full[row].toarray()[0]
        assert kept == set(np.argsort(-dense)[:3])


def test_bare_mlm_without_idf_is_a_clear_error(splade_tiny_path):
    with pytest.raises(InputError, match="no idf.json beside this masked LM"):
        load_sparse_encoder(splade_tiny_path)


def test_missing_local_model_folder():
    with pytest.raises(InputError, match="model folder not found"):
        load_sparse_encoder("./no/such/model")


@pytest.mark.network
def test_opensearch_doc_v2_distill_golden_value():
    """sentence-transformers' own golden value for doc-v2-distill: 17.5307 (needs the model hub)."""
    import os

    if os.environ.get("IDFSPLADE_NETWORK_TESTS") != "1":
        pytest.skip("needs the model hub: set IDFSPLADE_NETWORK_TESTS=1")
    try:
        model = load_sparse_encoder("opensearch-project/opensearch-neural-sparse-encoding-doc-v2-distill")
    except Exception as exc:  # noqa: BLE001 - any hub failure means offline
        pytest.skip(f"model hub not reachable: {exc}")
    score = model.similarity(model.encode_query([QUERY]), model.encode_document(["Currently New York is rainy."]))
    assert float(score[0, 0]) == pytest.approx(17.5307, abs=1e-3)
