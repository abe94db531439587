"""Siamese teachers: each encodes queries and passages *separately* into vectors, and a score is a
dot product. That is what the paper's teachers are (a dense and a sparse siamese retriever), and
BM25 fits the same shape (a query term-count vector against a row of BM25 term weights).

The shape matters for distillation: with vectors cached per text id, a teacher can score *any*
(query, candidate) pair, so in-batch targets (every query against every candidate in the batch,
as in the paper) cost a matrix product instead of a forward pass. :class:`CachedVectors` reads
vectors encoded once; :class:`OnTheFlyVectors` encodes on request; both give the same numbers.

A cross-encoder is not siamese (it needs the pair jointly) and would need one forward pass per
pair; it is not offered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from idfsplade.atomic import atomic_dir, atomic_write_json
from idfsplade.errors import InputError
from idfsplade.fingerprint import model_fingerprint, read_key, stale_notice, texts_sha256
from idfsplade.model.registry import DEFAULT_DENSE_MODEL

Vectors = np.ndarray | sp.csr_matrix


class Teacher(Protocol):
    """A siamese scorer: ``score(q, d) = encode_queries(q) · encode_passages(d)ᵀ``."""

    name: str

    def encode_queries(self, texts: list[str]) -> Vectors: ...

    def encode_passages(self, texts: list[str]) -> Vectors: ...


def dot_scores(queries: Vectors, passages: Vectors) -> np.ndarray:
    """Dense ``queries × passages`` score matrix for dense or sparse vectors."""
    product = queries @ passages.T
    return np.asarray(product.toarray() if sp.issparse(product) else product, dtype=np.float64)


class DenseTeacher:
    """Any sentence-transformers bi-encoder; cosine similarity (normalised embeddings)."""

    def __init__(self, model: str = DEFAULT_DENSE_MODEL, batch_size: int = 64, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        from idfsplade.model import resolve_model

        self.name = f"dense:{Path(model).name}"
        self.fingerprint = model_fingerprint(resolve_model(model))
        self.model = SentenceTransformer(resolve_model(model), device=device)
        self.batch_size = batch_size

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)


class SparseSiameseTeacher:
    """A SPLADE masked LM used on *both* sides (queries go through the model too), special tokens zeroed.

    Encoding reuses :class:`~idfsplade.model.DocumentEncoder`, so its passage vectors are exactly the
    ones the untrained inference-free student indexes.
    """

    def __init__(self, model: str = "splade-tiny", batch_size: int = 32, max_length: int = 512,
                 device: str | None = None) -> None:
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.models import SpladePooling, Transformer

        from idfsplade.model import DocumentEncoder, resolve_model

        self.name = f"sparse:{Path(model).name}"
        self.fingerprint = model_fingerprint(resolve_model(model))
        mlm = Transformer(resolve_model(model), transformer_task="fill-mask", max_seq_length=max_length)
        pooling = SpladePooling(pooling_strategy="max", embedding_dimension=len(mlm.tokenizer))
        self.encoder = DocumentEncoder(SparseEncoder(modules=[mlm, pooling], device=device),
                                       batch_size=batch_size, max_length=max_length)

    def encode_queries(self, texts: list[str]) -> sp.csr_matrix:
        return self.encoder.encode(texts)

    def encode_passages(self, texts: list[str]) -> sp.csr_matrix:
        return self.encoder.encode(texts)


class BM25Teacher:
    """BM25 (bm25s, the settings of :class:`~idfsplade.search.BM25Retriever`) as a siamese scorer.

    bm25s stores exactly what this needs, the per-document BM25 weight of every term (a sparse
    matrix); a query is its term counts, so ``q · row`` equals bm25s' score. Passages must belong to
    the pool the index was built on (term statistics are the pool's).
    """

    def __init__(self, pool_texts: list[str], stemmer: str | None = "english",
                 k1: float = 1.2, b: float = 0.75) -> None:
        import bm25s

        # Term statistics (and the query vocabulary) are the pool's: the name, which keys the
        # vector cache, carries a fingerprint of the pool so that a different pool never reuses it.
        digest = hashlib.sha1("\x00".join(pool_texts).encode("utf-8")).hexdigest()[:10]
        self.name = f"bm25:{len(pool_texts)}-{digest}"
        self.label = "BM25 (stemmed)" if stemmer else "BM25"  # for reports; ``name`` keys the cache
        self._stemmer = None
        if stemmer:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(stemmer)
        self._lookup = {text: i for i, text in enumerate(pool_texts)}
        index = bm25s.BM25(k1=k1, b=b)
        index.index(self._tokenize(pool_texts, ids=True), show_progress=False)
        scores = index.scores
        n_terms = len(scores["indptr"]) - 1
        # vocab_dict may hold an extra "" entry beyond the scored terms; keep only scored ones
        self._vocab: dict[str, int] = {t: i for t, i in index.vocab_dict.items() if i < n_terms}
        self._weights = sp.csc_matrix((scores["data"], scores["indices"], scores["indptr"]),
                                      shape=(scores["num_docs"], n_terms)).tocsr().astype(np.float32)

    def _tokenize(self, texts: list[str], ids: bool):
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False, return_ids=ids)

    def encode_queries(self, texts: list[str]) -> sp.csr_matrix:
        rows, cols = [], []
        for i, tokens in enumerate(self._tokenize(texts, ids=False)):
            known = [self._vocab[t] for t in tokens if t in self._vocab]
            rows += [i] * len(known)
            cols += known
        data = np.ones(len(cols), dtype=np.float32)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(texts), len(self._vocab)))

    def encode_passages(self, texts: list[str]) -> sp.csr_matrix:
        """Rows of the BM25 weight matrix; ``texts`` must be pool texts (looked up by value)."""
        missing = [t for t in texts if t not in self._lookup]
        if missing:
            raise ValueError(f"BM25Teacher scores only passages of its pool ({len(missing)} are not)")
        return self._weights[[self._lookup[t] for t in texts]]


class VectorSource(Protocol):
    """Vectors of a teacher for text ids."""

    def get(self, ids: Sequence[str]) -> Vectors: ...


class OnTheFlyVectors:
    """Encode the requested texts now (no cache): the reference the cache must reproduce."""

    def __init__(self, teacher: Teacher, texts: dict[str, str], side: str) -> None:
        self.teacher, self.texts, self.side = teacher, texts, side

    def get(self, ids: Sequence[str]) -> Vectors:
        texts = [self.texts[i] for i in ids]
        return self.teacher.encode_queries(texts) if self.side == "query" else self.teacher.encode_passages(texts)


class CachedVectors:
    """All vectors of one side, encoded once and kept in a folder (``vectors.npy`` or ``.npz`` + ids)."""

    def __init__(self, matrix: Vectors, ids: list[str]) -> None:
        self.matrix = matrix.tocsr() if sp.issparse(matrix) else matrix
        self.row = {doc_id: i for i, doc_id in enumerate(ids)}

    def get(self, ids: Sequence[str]) -> Vectors:
        try:
            rows = [self.row[i] for i in ids]
        except KeyError as exc:
            raise InputError(f"text id {exc.args[0]!r} is not in the teacher cache") from None
        return self.matrix[rows]

    @classmethod
    def load_or_encode(cls, teacher: Teacher, texts: dict[str, str], side: str, folder: Path,
                       chunk: int = 512) -> CachedVectors:
        """Reuse ``folder`` when it holds vectors of these ids from this teacher, else encode and write it.

        Written through :func:`~idfsplade.atomic.atomic_dir`: a killed encoding leaves no half cache.
        """
        ids = list(texts)
        meta_path = folder / "meta.json"
        # Keyed by content: the teacher's weights (or BM25 pool) and every text's bytes, not just ids.
        meta = {"teacher": teacher.name, "fingerprint": getattr(teacher, "fingerprint", teacher.name),
                "side": side, "n": len(ids), "texts": texts_sha256(texts)}
        saved = read_key(meta_path)
        if saved is not None:
            sparse = saved.pop("sparse", None)
            if saved == meta:
                matrix = sp.load_npz(folder / "vectors.npz") if sparse else np.load(folder / "vectors.npy")
                return cls(matrix, ids)
            stale_notice(f"{teacher.name} {side} vectors", folder, saved, meta)
        source = OnTheFlyVectors(teacher, texts, side)
        blocks = [source.get(ids[i:i + chunk]) for i in range(0, len(ids), chunk)]
        sparse = sp.issparse(blocks[0])
        matrix = sp.vstack(blocks, format="csr") if sparse else np.concatenate(blocks)
        with atomic_dir(folder) as tmp:
            if sparse:
                sp.save_npz(tmp / "vectors.npz", matrix)
            else:
                np.save(tmp / "vectors.npy", matrix)
            atomic_write_json(tmp / "ids.json", ids, indent=None)
            atomic_write_json(tmp / "meta.json", {**meta, "sparse": sparse})
        return cls(matrix, ids)
