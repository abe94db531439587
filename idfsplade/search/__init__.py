"""Retrievers: text in, ranked ids out. Each composes a query encoder with an index."""

from idfsplade.search.bm25 import BM25Retriever
from idfsplade.search.retriever import InferenceFreeRetriever, Retriever, Run

__all__ = ["BM25Retriever", "InferenceFreeRetriever", "Retriever", "Run"]
