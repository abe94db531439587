"""The query side of an inference-free model: tokenize, unique ids, weight = idf. No model call.

This is what ``SparseStaticEmbedding`` computes (tokenizer without special tokens, truncation at the
model's max length, presence × weight), re-done on the raw Rust tokenizer and a numpy weight array
because it sits on the search hot path: the ``SparseEncoder.encode_query`` call costs milliseconds of
Python and torch overhead for a few microseconds of work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sentence_transformers import SparseEncoder
from tokenizers import Tokenizer

from idfsplade.errors import InputError
from idfsplade.model.inference_free import query_weights


@dataclass(frozen=True)
class SparseQuery:
    """A sparse query vector: sorted unique term ids and their weights."""

    ids: np.ndarray  # int32, sorted, unique
    weights: np.ndarray  # float32


class QueryEncoder:
    """Turn query text into a :class:`SparseQuery` with a tokenizer and a per-token weight array.

    ``prune_ratio`` (off by default) drops the query's tokens whose weight is below ``prune_ratio ×``
    its largest weight: OpenSearch's ``max_ratio`` pruning applied to the query. Low-IDF tokens are
    the frequent ones with the longest postings lists, so pruning them cuts search cost for a small
    loss in ranking quality (``benchmarks/pruning.py`` measures both).
    """

    def __init__(self, tokenizer, weights: np.ndarray, max_length: int | None = None,
                 prune_ratio: float | None = None) -> None:
        if prune_ratio is not None and not 0.0 <= prune_ratio <= 1.0:
            raise InputError(f"prune_ratio must be in [0, 1], got {prune_ratio}", field="prune_ratio")
        self.prune_ratio = prune_ratio
        self.weights = np.asarray(weights, dtype=np.float32)
        # A private copy of the Rust tokenizer, so that setting truncation never touches the caller's.
        self._tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._tokenizer.no_padding()
        max_length = max_length or tokenizer.model_max_length
        if max_length and max_length < 1_000_000:
            self._tokenizer.enable_truncation(max_length)
        else:
            self._tokenizer.no_truncation()
        self.vocab_size = len(self.weights)
        self.id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}

    @classmethod
    def from_model(cls, model: SparseEncoder, prune_ratio: float | None = None) -> QueryEncoder:
        weights, tokenizer = query_weights(model)
        return cls(tokenizer, weights, max_length=model[0].sub_modules["query"][0].max_seq_length,
                   prune_ratio=prune_ratio)

    def encode(self, text: str) -> SparseQuery:
        ids = np.unique(np.asarray(self._tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int32))
        weights = self.weights[ids]
        keep = weights != 0
        if self.prune_ratio and len(weights):
            keep &= weights >= self.prune_ratio * weights.max()
        return SparseQuery(ids[keep], weights[keep])

    def encode_batch(self, texts: list[str]) -> list[SparseQuery]:
        return [self.encode(t) for t in texts]

    def to_csr(self, queries: list[SparseQuery]) -> sp.csr_matrix:
        indptr = np.zeros(len(queries) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(q.ids) for q in queries])
        indices = np.concatenate([q.ids for q in queries]) if queries else np.zeros(0, np.int32)
        data = np.concatenate([q.weights for q in queries]) if queries else np.zeros(0, np.float32)
        return sp.csr_matrix((data, indices, indptr), shape=(len(queries), self.vocab_size))

    def decode(self, query: SparseQuery) -> dict[str, float]:
        return {self.id_to_token[int(i)]: float(w) for i, w in zip(query.ids, query.weights)}
