"""The synthetic corpora of ``benchmarks/scale.py``: the topical generator keeps the reference's topics
(what clustering indexes such as Seismic depend on), the independent one does not, and
``nearest_cosine`` is the exact nearest-neighbour cosine."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("search_latency", REPO / "benchmarks" / "search_latency.py")
search_latency = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("search_latency", search_latency)  # its dataclasses look their module up
_spec.loader.exec_module(search_latency)


def topic_reference(n_docs: int = 400, n_topics: int = 8, topic_terms: int = 60, per_doc: int = 25,
                    vocab: int = 2000, seed: int = 3) -> sp.csr_matrix:
    """Documents that each draw their terms from one topic's own term set."""
    rng = np.random.default_rng(seed)
    topics = rng.permutation(vocab)[: n_topics * topic_terms].reshape(n_topics, topic_terms)
    rows, cols, vals = [], [], []
    for d in range(n_docs):
        terms = rng.choice(topics[d % n_topics], per_doc, replace=False)
        rows += [d] * per_doc
        cols += terms.tolist()
        vals += rng.uniform(0.1, 3.0, per_doc).tolist()
    return sp.csr_matrix((np.float32(vals), (rows, cols)), shape=(n_docs, vocab))


def test_nearest_cosine_is_the_exact_nearest_neighbour():
    docs = topic_reference(n_docs=60)
    dense = docs.toarray().astype(np.float64)
    unit = dense / np.linalg.norm(dense, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -1)
    rng = np.random.default_rng(1)
    rows = rng.choice(60, 20, replace=False)
    got = search_latency.nearest_cosine(docs, n_sample=20, seed=1)
    np.testing.assert_allclose(got, similarity[rows].max(axis=1), rtol=1e-5)


def test_topical_documents_keep_the_reference_topics_and_independent_ones_do_not():
    reference = topic_reference()
    topical = search_latency.corpus_topical(reference, 1000, seed=0)
    independent = search_latency.corpus_like(reference, 1000, seed=0)
    assert topical.shape == (1000, reference.shape[1]) and topical.has_sorted_indices
    assert np.all(topical.data > 0)
    real_nnz = reference.nnz / reference.shape[0]
    assert 0.8 * real_nnz <= topical.nnz / 1000 <= 1.05 * real_nnz
    # Terms only ever come from documents of the same topic (base and partner share a term, hence a
    # topic): every synthetic document's terms sit inside one topic's term set.
    topic_of_term = np.full(reference.shape[1], -1)
    for d in range(reference.shape[0]):
        topic_of_term[reference[d].indices] = d % 8
    for row in range(1000):
        assert len(set(topic_of_term[topical[row].indices])) == 1
    real = search_latency.nearest_cosine(reference).mean()
    kept = search_latency.nearest_cosine(topical).mean()
    lost = search_latency.nearest_cosine(independent).mean()
    assert kept > lost + 0.15
    assert abs(kept - real) < abs(lost - real)


def test_topical_generator_is_deterministic_per_seed():
    reference = topic_reference(n_docs=100)
    a = search_latency.corpus_topical(reference, 300, seed=5, chunk=128)
    b = search_latency.corpus_topical(reference, 300, seed=5, chunk=128)
    c = search_latency.corpus_topical(reference, 300, seed=6, chunk=128)
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0
