"""Sparsity statistics: active dimensions and the FLOPS estimate of retrieval cost.

FLOPS follows SPLADE (Formal et al. 2021) and the paper: ``Σ_j p_q(j) · p_d(j)``, with ``p_q(j)`` and
``p_d(j)`` the fractions of queries and documents in which term ``j`` is active. It is the expected
number of postings a query touches per document.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


def activation_probability(matrix: sp.csr_matrix) -> np.ndarray:
    """Fraction of rows in which each column is non-zero."""
    matrix = sp.csr_matrix(matrix)
    counts = np.bincount(matrix.indices[matrix.data != 0], minlength=matrix.shape[1])
    return counts / max(matrix.shape[0], 1)


def flops(queries: sp.csr_matrix, docs: sp.csr_matrix) -> float:
    return float(np.dot(activation_probability(queries), activation_probability(docs)))


@dataclass(frozen=True)
class SparsityStats:
    query_active_dims: float
    doc_active_dims: float
    flops: float


def sparsity_stats(queries: sp.csr_matrix, docs: sp.csr_matrix) -> SparsityStats:
    q_nnz = np.diff(sp.csr_matrix(queries).indptr)
    d_nnz = np.diff(sp.csr_matrix(docs).indptr)
    return SparsityStats(float(q_nnz.mean()) if len(q_nnz) else 0.0,
                         float(d_nnz.mean()) if len(d_nnz) else 0.0, flops(queries, docs))
