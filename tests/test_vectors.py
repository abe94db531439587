"""Sparse vectors: pruning as OpenSearch defines it, sparsity stats, and the resumable CSR store."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from idfsplade.errors import InputError
from idfsplade.vectors import PruneConfig, SparseMatrixStore, flops, load_csr, prune_rows, save_csr, sparsity_stats

M = sp.csr_matrix(np.array([[0.0, 4.0, 1.0, 0.3, 2.0],
                            [0.5, 0.0, 0.0, 0.0, 0.0],
                            [0.0, 0.0, 0.0, 0.0, 0.0],
                            [1.0, 1.0, 3.0, 0.0, 0.2]], dtype=np.float32))


@pytest.mark.parametrize("config, expected", [
    (PruneConfig(top_k=2), [[0, 4, 0, 0, 2], [0.5, 0, 0, 0, 0], [0] * 5, [1, 0, 3, 0, 0]]),  # tie: lower id
    (PruneConfig(max_ratio=0.4), [[0, 4, 0, 0, 2], [0.5, 0, 0, 0, 0], [0] * 5, [0, 0, 3, 0, 0]]),
    (PruneConfig(threshold=1.0), [[0, 4, 1, 0, 2], [0] * 5, [0] * 5, [1, 1, 3, 0, 0]]),
    (PruneConfig(top_k=1, threshold=1.0), [[0, 4, 0, 0, 0], [0] * 5, [0] * 5, [0, 0, 3, 0, 0]]),
    (PruneConfig(), M.toarray().tolist()),
])
def test_pruning_by_hand(config, expected):
    np.testing.assert_allclose(prune_rows(M, config).toarray(), np.array(expected, dtype=np.float32))


def test_top_k_ties_keep_exactly_k():
    tied = sp.csr_matrix(np.array([[1.0, 1.0, 1.0, 0.5]], dtype=np.float32))
    assert prune_rows(tied, PruneConfig(top_k=2)).nnz == 2


@pytest.mark.parametrize("kwargs", [{"top_k": 0}, {"max_ratio": 1.5}, {"threshold": -1}])
def test_bad_prune_config(kwargs):
    with pytest.raises(InputError):
        PruneConfig(**kwargs)


def test_flops_and_active_dims_by_hand():
    queries = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 1, 0, 0, 0]], dtype=np.float32))
    # p_q = [0.5, 1, 0, 0, 0]; p_d = [2/4, 2/4, 2/4, 1/4, 2/4]  -> 0.5*0.5 + 1*0.5 = 0.75
    assert flops(queries, M) == pytest.approx(0.75)
    stats = sparsity_stats(queries, M)
    assert stats.query_active_dims == pytest.approx(1.5)
    assert stats.doc_active_dims == pytest.approx((4 + 1 + 0 + 4) / 4)


def _is_memory_mapped(array: np.ndarray) -> bool:
    while array is not None:
        if isinstance(array, np.memmap):
            return True
        array = array.base if isinstance(array.base, np.ndarray) else None
    return False


def test_csr_round_trip_memory_mapped(tmp_path):
    save_csr(tmp_path / "m", M, ["a", "b", "c", "d"], extra={"model": "x"})
    loaded, ids, meta = load_csr(tmp_path / "m")
    assert ids == ["a", "b", "c", "d"] and meta["model"] == "x"
    assert all(_is_memory_mapped(a) for a in (loaded.data, loaded.indices, loaded.indptr))
    np.testing.assert_array_equal(loaded.toarray(), M.toarray())


def test_store_resumes_from_finished_shards(tmp_path):
    store = SparseMatrixStore(tmp_path / "docs", n_cols=5)
    store.write_shard(0, M[:2], ["a", "b"])
    assert store.has_shard(0) and not store.has_shard(1)
    # A new store object (a restarted job) sees shard 0 and only needs shard 1.
    again = SparseMatrixStore(tmp_path / "docs", n_cols=5)
    assert again.has_shard(0)
    again.write_shard(1, M[2:], ["c", "d"])
    again.finish(2)
    loaded, ids, _ = load_csr(tmp_path / "docs")
    assert ids == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(loaded.toarray(), M.toarray())
    assert not (tmp_path / "docs.shards").exists()


def test_killed_save_leaves_previous_version(tmp_path, monkeypatch):
    save_csr(tmp_path / "m", M, ["a", "b", "c", "d"])
    import idfsplade.vectors.store as store

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        save_csr(tmp_path / "m", M[:1], ["a"])
    loaded, ids, _ = load_csr(tmp_path / "m")
    assert ids == ["a", "b", "c", "d"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
