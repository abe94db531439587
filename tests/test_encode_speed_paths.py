"""The chunked document path (vocabulary projection chunk by chunk, max-pooled into a reused buffer)
gives the vectors of the previous full-logits path, on real text, padded batches and chunk boundaries;
heads it cannot split fall back to the full path; the opt-in precisions stay close."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idfsplade.data import BeirDataset, document_text
from idfsplade.model import DocumentEncoder, build_inference_free_encoder
from idfsplade.model.pooling import splade_max_pool, splade_max_pool_chunked

EXTRA = ["ny", "", "Currently New York is rainy. [SEP] [CLS] [MASK]",
         "information retrieval " * 400]  # > 512 tokens: truncated


@pytest.fixture(scope="module")
def texts(adi_path):
    """ADI's 82 real documents (3 to 170 tokens) and a few edge cases."""
    return [document_text(d) for d in BeirDataset(adi_path).iter_corpus()] + EXTRA


@pytest.fixture(scope="module")
def full_vectors(tiny_encoder, texts):
    return DocumentEncoder(tiny_encoder, batch_size=8, pooling="full", precision="fp32").encode(texts).toarray()


@pytest.mark.parametrize("batch_size,chunk_size,n_texts", [
    (8, None, None), (8, 37, None), pytest.param(1, 5, 12, marks=pytest.mark.slow),
    pytest.param(32, 1000, None, marks=pytest.mark.slow)])
def test_chunked_equals_full_path(tiny_encoder, texts, full_vectors, batch_size, chunk_size, n_texts):
    """``n_texts``: the last n texts only (the edge cases among them), where tiny chunks make it slow."""
    n = n_texts or len(texts)
    encoder = DocumentEncoder(tiny_encoder, batch_size=batch_size, chunk_size=chunk_size)
    chunked = encoder.encode(texts[-n:]).toarray()
    assert encoder.pooling_mode == "chunked"  # no fallback for BERT
    np.testing.assert_allclose(chunked, full_vectors[-n:], atol=1e-5, rtol=0)
    assert (chunked > 0).sum(axis=1)[:-4].min() > 5


def test_special_tokens_and_pads_are_zero(tiny_encoder, tokenizer, texts):
    chunked = DocumentEncoder(tiny_encoder, batch_size=8, chunk_size=37).encode(texts[-24:]).toarray()
    special = sorted(set(tokenizer.all_special_ids))  # [PAD] [UNK] [CLS] [SEP] [MASK]
    assert (chunked[:, special] == 0).all()
    # A text alone (no padding at all) equals the same text in a padded batch.
    alone = DocumentEncoder(tiny_encoder, batch_size=1).encode([EXTRA[2]]).toarray()[0]
    np.testing.assert_allclose(chunked[-2], alone, atol=1e-5, rtol=0)


def test_pooling_function_matches_full_logits_with_empty_rows():
    torch.manual_seed(0)
    states, weight, bias = torch.randn(4, 9, 6), torch.randn(50, 6), torch.randn(50)
    mask = torch.tensor([[1] * 9, [1] * 3 + [0] * 6, [0] * 9, [1] * 5 + [0] * 4])
    special = torch.tensor([0, 3])
    expected = splade_max_pool(states @ weight.T + bias, mask, special)
    for chunk_size in (1, 2, 4, 7, 64):
        got = splade_max_pool_chunked(states, mask, weight, bias, special, chunk_size=chunk_size)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (got[2] == 0).all()  # no position at all: weight 0


def test_head_it_cannot_split_falls_back_to_full(splade_tiny_path, adi_idf, texts):
    """A head that changes the logits after its projection cannot be reordered: the first batch's
    self-check notices, warns, and the encoder uses the full path."""
    model = build_inference_free_encoder(splade_tiny_path, adi_idf, device="cpu")
    encoder = DocumentEncoder(model, batch_size=8)
    encoder.mlm.auto_model.get_output_embeddings().register_forward_hook(lambda module, args, out: out * 2)
    with pytest.warns(UserWarning, match="chunked pooling unavailable"):
        vectors = encoder.encode(texts[:10]).toarray()
    assert encoder.pooling_mode == "full"
    expected = DocumentEncoder(model, batch_size=8, pooling="full").encode(texts[:10]).toarray()
    np.testing.assert_allclose(vectors, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("precision,atol", [("int8", 0.3), ("bf16", 0.1)])
def test_reduced_precision_options_stay_close(tiny_encoder, texts, full_vectors, precision, atol):
    encoder = DocumentEncoder(tiny_encoder, batch_size=8, precision=precision)
    vectors = encoder.encode(texts[:8]).toarray()
    np.testing.assert_allclose(vectors, full_vectors[:8], atol=atol, rtol=0)
    top = np.argsort(-full_vectors[:8], axis=1)[:, :5]
    assert (np.take_along_axis(vectors, top, axis=1) > 0).all()


def test_bad_options_are_refused(tiny_encoder):
    with pytest.raises(ValueError, match="pooling"):
        DocumentEncoder(tiny_encoder, pooling="mean")
    with pytest.raises(ValueError, match="precision"):
        DocumentEncoder(tiny_encoder, precision="fp8")
    with pytest.raises(ValueError, match="int8"):
        DocumentEncoder(tiny_encoder, pooling="full", precision="int8")
