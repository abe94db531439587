"""Seismic (``pyseismic-lsr``): approximate top-k over learned sparse vectors, for large collections.

Seismic keeps, per term, only the highest-weighted postings (``n_postings`` on average), groups them
into blocks with a summary vector each, and at query time scores a block's documents only when the
block's summary score reaches ``heap_factor`` × the current k-th score, walking the postings of the
``query_cut`` heaviest query terms only. Lower ``heap_factor`` = more blocks = higher recall, slower.
Values are stored as float16, so even a fully visited index returns scores rounded to ~3 significant
digits. Recall against the exact index is measured in ``docs/backends.md``: on a few thousand
documents the exact index is faster; at 1M topical documents ``n_postings=2000, heap_factor=0.9``
searches in 0.25x the exact index's time at recall@10 0.991 (``benchmarks/results/scale.json``).

Term ids go in as they are: ``SeismicDataset.add_documents_by_id`` takes integer components (CSR
layout) and queries name component 42 as the string ``"42"``. Vocabularies up to 2^16 use
``SeismicIndex`` (u16 components); larger ones ``SeismicIndexLV`` (u32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from idfsplade.atomic import atomic_dir, atomic_write_json
from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits, read_index_meta

FORMAT = "idfsplade-seismic/1"
_U16_VOCABULARY = 1 << 16


def require() -> None:
    """Raise :class:`InputError` unless ``pyseismic-lsr`` imports."""
    try:
        import seismic  # noqa: F401
    except ImportError as exc:
        raise InputError(f"the seismic backend needs pyseismic-lsr: pip install 'idfsplade[seismic]' ({exc})") from None


class SeismicBackend:
    """A Seismic index behind the :class:`~idfsplade.index.base.SparseIndex` interface.

    ``query_cut``, ``heap_factor`` and ``n_knn`` are plain attributes: change them between searches
    to trade recall for speed without rebuilding.
    """

    def __init__(self, index, n_docs: int, vocab_size: int, query_cut: int = 32, heap_factor: float = 0.8,
                 n_knn: int = 0, num_threads: int = 0) -> None:
        import seismic

        self.index = index
        self.n_docs = n_docs
        self.vocab_size = vocab_size
        self.query_cut = query_cut
        self.heap_factor = heap_factor
        self.n_knn = n_knn
        self.num_threads = num_threads
        self._string_dtype = seismic.get_seismic_string()

    def __len__(self) -> int:
        return self.n_docs

    @classmethod
    def build(cls, docs: sp.csr_matrix, doc_ids: list[str], path: Path | None = None, *,
              n_postings: int = 3500, centroid_fraction: float = 0.1, min_cluster_size: int = 2,
              summary_energy: float = 0.4, max_fraction: float = 1.5, doc_cut: int = 15, nknn: int = 0,
              query_cut: int = 32, heap_factor: float = 0.8, n_knn: int = 0, num_threads: int = 0
              ) -> SeismicBackend:
        """Index ``docs`` (sorted CSR rows, no explicit zeros); with ``path``, also save it there.

        Build knobs are Seismic's own, with its defaults: ``n_postings`` (average postings kept per
        term; the default keeps everything below ~5k documents), ``centroid_fraction``,
        ``min_cluster_size``, ``summary_energy`` (fraction of a block's mass its summary keeps),
        ``max_fraction``, ``doc_cut``, ``nknn`` (k-NN graph for refinement; 0 = none). Search knobs:
        ``query_cut`` (heaviest query terms used; 32 keeps every term of most idf queries),
        ``heap_factor`` (block pruning; lower = higher recall, 0.8 gives recall@10 0.996 on SciFact),
        ``n_knn`` (graph neighbours scanned, at most ``nknn``), ``num_threads`` (0 = all cores, for
        build and batch search).
        """
        import seismic

        if docs.nnz == 0:
            raise InputError("the seismic backend needs at least one non-empty document")
        if n_knn > nknn:
            raise InputError(f"n_knn={n_knn} needs a k-NN graph of at least that size (nknn={nknn})", field="n_knn")
        large = docs.shape[1] > _U16_VOCABULARY
        dataset = (seismic.SeismicDatasetLV if large else seismic.SeismicDataset)(dim=docs.shape[1])
        # Empty rows are skipped by Seismic (they can never score); the ids of the others map 1:1.
        dataset.add_documents_by_id(list(doc_ids), docs.indices.astype(np.int64), docs.data.astype(np.float32),
                                    docs.indptr.astype(np.int64))
        index_class = seismic.SeismicIndexLV if large else seismic.SeismicIndex
        index = index_class.build_from_dataset(dataset, n_postings=n_postings, centroid_fraction=centroid_fraction,
                                               min_cluster_size=min_cluster_size, summary_energy=summary_energy,
                                               max_fraction=max_fraction, doc_cut=doc_cut, nknn=nknn,
                                               num_threads=num_threads)
        backend = cls(index, docs.shape[0], docs.shape[1], query_cut, heap_factor, n_knn, num_threads)
        if path is not None:
            backend.save(path)
        return backend

    def save(self, path: str | Path) -> None:
        """Write ``index.index.seismic`` and ``meta.json`` into the folder ``path``, atomically."""
        with atomic_dir(path) as tmp:
            self.index.save(str(tmp / "index"))  # Seismic appends ".index.seismic"
            atomic_write_json(tmp / "meta.json", {
                "format": FORMAT, "n_docs": self.n_docs, "vocab_size": self.vocab_size,
                "large_vocabulary": self.vocab_size > _U16_VOCABULARY, "query_cut": self.query_cut,
                "heap_factor": self.heap_factor, "n_knn": self.n_knn})

    @classmethod
    def load(cls, path: str | Path, num_threads: int = 0) -> SeismicBackend:
        """Load a folder written by :meth:`save`, with the search knobs it was saved with."""
        import seismic

        path = Path(path)
        meta = read_index_meta(path, FORMAT, "a seismic index")
        index_class = seismic.SeismicIndexLV if meta["large_vocabulary"] else seismic.SeismicIndex
        index = index_class.load(str(path / "index.index.seismic"))
        return cls(index, meta["n_docs"], meta["vocab_size"], meta["query_cut"], meta["heap_factor"],
                   meta["n_knn"], num_threads)

    def _query(self, term_ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Seismic's query form: term ids as strings; ids outside the vocabulary and zero weights dropped."""
        term_ids = np.asarray(term_ids, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float32)
        keep = (term_ids >= 0) & (term_ids < self.vocab_size) & (weights != 0)
        return term_ids[keep].astype(str).astype(self._string_dtype), weights[keep]

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        components, values = self._query(term_ids, weights)
        if k <= 0 or len(components) == 0:
            return _hits([])
        return _hits(self.index.search("q", components, values, k=k, query_cut=self.query_cut,
                                       heap_factor=self.heap_factor, n_knn=self.n_knn))

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        prepared = [self._query(ids, w) for ids, w in queries]
        todo = [i for i, (components, _) in enumerate(prepared) if len(components)]
        results: list[SearchHits] = [_hits([]) for _ in queries]
        if k <= 0 or not todo:
            return results
        found = self.index.batch_search(np.array([str(i) for i in todo], dtype=self._string_dtype),
                                        [prepared[i][0] for i in todo], [prepared[i][1] for i in todo],
                                        k=k, query_cut=self.query_cut, heap_factor=self.heap_factor,
                                        n_knn=self.n_knn, num_threads=self.num_threads)
        # Result lists do not come back in query order (pyseismic-lsr 0.5.4, seen from ~300 queries
        # on), so each is matched by the query id it carries; a query with no hit has an empty list.
        for rows in found:
            if rows:
                results[int(rows[0][0])] = _hits(rows)
        return results


def _hits(rows: list[tuple[str, float, str]]) -> SearchHits:
    """Seismic's ``(query_id, score, doc_id)`` rows, best first, as hits with positive scores only."""
    rows = [r for r in rows if r[1] > 0]
    return SearchHits([r[2] for r in rows], np.asarray([r[1] for r in rows], dtype=np.float32))
