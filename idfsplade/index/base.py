"""The backend interface every index implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SearchHits:
    """Top-k of one query, best first: external document ids and their scores."""

    ids: list[str]
    scores: np.ndarray  # float32, descending


@runtime_checkable
class SparseIndex(Protocol):
    """A searchable collection of sparse document vectors over a fixed vocabulary."""

    def __len__(self) -> int: ...

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        """Top-k documents by dot product with the query vector (``term_ids``, ``weights``)."""
        ...

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        ...
