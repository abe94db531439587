"""Indexes: sparse vectors in, ids and scores out. No index knows anything about models.

``exact`` (embedded, the default) plus optional backends behind ``registry.build_backend``:
Seismic (approximate), Milvus (embedded milvus-lite or a server/cluster by URI), Lucene (Pyserini
impact index), and an OpenSearch client in ``opensearch``.
"""

from idfsplade.index.base import SearchHits, SparseIndex
from idfsplade.index.exact import InvertedIndex
from idfsplade.index.registry import available_backends, build_backend

__all__ = ["InvertedIndex", "SearchHits", "SparseIndex", "available_backends", "build_backend"]
