"""Per-vector pruning, as OpenSearch's ``sparse_encoding`` ingest processor defines it.

- ``top_k``: keep the k largest weights of each vector.
- ``max_ratio``: keep weights ``>= max_ratio * max(weights)`` of that vector.
- ``threshold`` (OpenSearch's ``abs_value``): keep weights ``>= threshold``.

The three can be combined; a weight must survive all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from idfsplade.errors import InputError


@dataclass(frozen=True)
class PruneConfig:
    top_k: int | None = None
    max_ratio: float | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise InputError(f"top_k must be >= 1, got {self.top_k}", field="top_k")
        if self.max_ratio is not None and not 0.0 <= self.max_ratio <= 1.0:
            raise InputError(f"max_ratio must be in [0, 1], got {self.max_ratio}", field="max_ratio")
        if self.threshold is not None and self.threshold < 0:
            raise InputError(f"threshold must be >= 0, got {self.threshold}", field="threshold")

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.top_k, self.max_ratio, self.threshold))


def prune_rows(matrix: sp.csr_matrix, config: PruneConfig) -> sp.csr_matrix:
    """Return a pruned copy of a CSR matrix (rows are vectors); zeros are always dropped."""
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.eliminate_zeros()
    if not config.active or matrix.nnz == 0:
        return matrix
    data, indptr = matrix.data, matrix.indptr
    keep = np.ones(matrix.nnz, dtype=bool)
    lengths = np.diff(indptr)
    row_of = np.repeat(np.arange(matrix.shape[0]), lengths)
    if config.threshold is not None:
        keep &= data >= config.threshold
    if config.max_ratio is not None:
        row_max = np.zeros(matrix.shape[0], dtype=data.dtype)
        nonempty = lengths > 0
        row_max[nonempty] = np.maximum.reduceat(data, indptr[:-1][nonempty])
        keep &= data >= config.max_ratio * row_max[row_of]
    if config.top_k is not None:
        # Rank inside each row by descending weight: sort by (row, -weight), then position in row.
        order = np.lexsort((-data, row_of))
        rank = np.empty(matrix.nnz, dtype=np.int64)
        rank[order] = np.arange(matrix.nnz) - indptr[row_of[order]]
        keep &= rank < config.top_k
    matrix.data = np.where(keep, data, 0).astype(data.dtype)
    matrix.eliminate_zeros()
    return matrix
