"""Sparse vectors as data: the on-disk CSR store, pruning and sparsity statistics.

Shared by the model (which produces vectors), the index (which consumes them) and evaluation; it
depends on none of them.
"""

from idfsplade.vectors.pruning import PruneConfig, prune_rows
from idfsplade.vectors.stats import SparsityStats, flops, sparsity_stats
from idfsplade.vectors.store import SparseMatrixStore, discard_stale_shards, load_csr, save_csr

__all__ = ["PruneConfig", "prune_rows", "SparsityStats", "flops", "sparsity_stats", "SparseMatrixStore",
           "discard_stale_shards", "load_csr", "save_csr"]
