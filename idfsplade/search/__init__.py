"""Retrievers: text in, ranked ids out. Each composes a query encoder with an index.

``BM25Retriever`` (bm25s) is imported on first use: the inference-free search path
(``idfsplade search``, the service) should not pay for bm25s and scipy at startup.
"""

from idfsplade.lazy import lazy_attributes
from idfsplade.search.retriever import InferenceFreeRetriever, Retriever, Run

__all__ = ["BM25Retriever", "InferenceFreeRetriever", "Retriever", "Run"]

__getattr__ = lazy_attributes(__name__, {"BM25Retriever": "idfsplade.search.bm25"})
