"""Indexes: sparse vectors in, ids and scores out. No index knows anything about models.

``exact`` (embedded, the default) plus optional backends behind ``registry.build_backend``:
Seismic (approximate), Milvus (embedded milvus-lite or a server/cluster by URI), Lucene (Pyserini
impact index), and an OpenSearch client in ``opensearch``.
"""

from idfsplade.index.base import SearchHits, SparseIndex
from idfsplade.index.exact import InvertedIndex
from idfsplade.lazy import lazy_attributes

__all__ = ["InvertedIndex", "SearchHits", "SparseIndex", "available_backends", "build_backend"]

# The registry imports scipy (~0.5 s): loaded on first use, not by every reader of an index.
__getattr__ = lazy_attributes(__name__, {"available_backends": "idfsplade.index.registry",
                                         "build_backend": "idfsplade.index.registry"})
