"""The inference-free retriever: :class:`QueryEncoder` (tokenize + idf) feeding a :class:`SparseIndex`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from idfsplade.index.base import SearchHits, SparseIndex
from idfsplade.query.encoder import QueryEncoder

Run = dict[str, dict[str, float]]  # query id -> {doc id: score}, the shape ir-measures and TREC files take


class Retriever(Protocol):
    name: str

    def search(self, text: str, k: int = 10) -> SearchHits: ...

    def search_many(self, queries: dict[str, str], k: int = 100,
                    progress: Callable[[int], None] | None = None) -> Run: ...


def hits_to_run(results: dict[str, SearchHits]) -> Run:
    return {qid: {doc: float(s) for doc, s in zip(h.ids, h.scores)} for qid, h in results.items()}


class InferenceFreeRetriever:
    """Search with no model call: the query vector is the idf of its unique tokens."""

    def __init__(self, query_encoder: QueryEncoder, index: SparseIndex, name: str = "inference-free") -> None:
        self.query_encoder = query_encoder
        self.index = index
        self.name = name

    def search(self, text: str, k: int = 10) -> SearchHits:
        query = self.query_encoder.encode(text)
        return self.index.search(query.ids, query.weights, k)

    def search_many(self, queries: dict[str, str], k: int = 100,
                    progress: Callable[[int], None] | None = None) -> Run:
        results = {}
        for qid, text in queries.items():
            results[qid] = self.search(text, k)
            if progress is not None:
                progress(1)
        return hits_to_run(results)
