"""The backend interface every index implements."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from idfsplade.errors import InputError


@dataclass(frozen=True)
class SearchHits:
    """Top-k of one query, best first: external document ids and their scores."""

    ids: list[str]
    scores: np.ndarray  # float32, descending
    rows: np.ndarray | None = None  # the hits' index rows (intp), when the backend has rows

@runtime_checkable
class SparseIndex(Protocol):
    """A searchable collection of sparse document vectors over a fixed vocabulary."""

    def __len__(self) -> int: ...

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        """Top-k documents by dot product with the query vector (``term_ids``, ``weights``)."""
        ...

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        ...


def read_index_meta(path: str | Path, expected_format: str, kind: str) -> dict:
    """``meta.json`` of an index folder, checked to be of ``expected_format`` (one message for every backend)."""
    meta_path = Path(path) / "meta.json"
    if not meta_path.exists():
        raise InputError(f"not {kind} folder (no meta.json)", path=path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable ({type(exc).__name__}): rebuild the index", path=meta_path) from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        raise InputError(f"unknown index format {meta.get('format') if isinstance(meta, dict) else None!r}",
                         path=meta_path, field="format")
    return meta


class RowsById:
    """``len(index)`` and ``index.row_of(doc_id)`` over an index's ``doc_ids`` (row order): shared by the exact
    index and the backend folders."""

    doc_ids: list[str]

    def __len__(self) -> int:
        return len(self.doc_ids)

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {doc_id: row for row, doc_id in enumerate(self.doc_ids)}

    def row_of(self, doc_id: str) -> int:
        """The row of a document id (KeyError if absent)."""
        return self._rows[doc_id]
