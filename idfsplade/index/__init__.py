"""Indexes: sparse vectors in, ids and scores out. No index knows anything about models.

``exact`` (embedded, the default) plus optional backends behind ``registry.build_backend``:
Seismic (approximate), Milvus (embedded milvus-lite or a server/cluster by URI), Lucene (Pyserini
impact index), and an OpenSearch client in ``opensearch``.
"""

from idfsplade.index.base import SearchHits, SparseIndex
from idfsplade.index.exact import InvertedIndex

__all__ = ["InvertedIndex", "SearchHits", "SparseIndex", "available_backends", "build_backend"]


def __getattr__(name: str):
    # The registry imports scipy (~0.5 s): loaded on first use, not by every reader of an index.
    if name in ("available_backends", "build_backend"):
        from idfsplade.index import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
