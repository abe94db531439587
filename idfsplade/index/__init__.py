"""Indexes: sparse vectors in, ids and scores out. No index knows anything about models."""

from idfsplade.index.base import SearchHits, SparseIndex
from idfsplade.index.exact import InvertedIndex

__all__ = ["SearchHits", "SparseIndex", "InvertedIndex"]
