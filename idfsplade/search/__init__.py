"""Retrievers: text in, ranked ids out. Each composes a query encoder with an index.

``BM25Retriever`` (bm25s) is imported on first use: the inference-free search path
(``idfsplade search``, the service) should not pay for bm25s and scipy at startup.
"""

from idfsplade.search.retriever import InferenceFreeRetriever, Retriever, Run

__all__ = ["BM25Retriever", "InferenceFreeRetriever", "Retriever", "Run"]


def __getattr__(name: str):
    if name == "BM25Retriever":
        from idfsplade.search.bm25 import BM25Retriever

        return BM25Retriever
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
