"""The embedded exact inverted index: term-major postings (CSC), memory-mapped from ``.npy`` files.

Layout on disk (bm25s-style, readable without idfsplade): ``postings_docs.npy`` (int32 doc rows,
sorted within each term), ``postings_weights.npy`` (float32), ``term_ptr.npy`` (int64 offsets,
vocabulary + 1), and ``meta.json`` with the doc ids. Scores are exact dot products.

Why not ``csc[:, term_ids] @ weights``: scipy builds a new sparse matrix for every query and then
scans a dense score array of every document for the top-k; on 100k documents that is ~1 ms of fixed
cost for tens of µs of arithmetic (``benchmarks/search_latency.py``). Search here is term-at-a-time
into a reused per-thread score buffer, with exact MaxScore pruning (Turtle & Flood 1995): terms are
taken by falling upper bound ``query weight × max posting weight``; once the bounds of the terms left
sum to less than the current k-th best partial score, no unseen document can enter the top-k, so the
long lists of frequent, low-weight terms are only probed (binary search) for the few remaining
candidates instead of scanned. Checked: bm25s scores BM25 with the same gather but exhaustively;
PISA and Lucene implement MaxScore over compressed blocks in C++/Java, which numpy cannot express.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from idfsplade.atomic import atomic_dir, atomic_save_npy, atomic_write_json
from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits

FORMAT = "idfsplade-inverted-index/1"

# Relative slack on score bounds: float32 sums carry rounding error (about 6e-8 per addition), and a
# bound that is too tight could drop a true top-k document. Slack only costs a few more candidates.
_BOUND_SLACK = 1e-4
# Below this many postings left to scan, finishing exhaustively is cheaper than a pruning check.
_MIN_POSTINGS_TO_PRUNE = 2048


@dataclass(frozen=True)
class _Terms:
    """A query reduced to its terms with postings, in processing order (falling upper bound)."""

    starts: np.ndarray  # int64
    ends: np.ndarray  # int64
    weights: np.ndarray  # float32 query weights
    bounds: np.ndarray  # float64, query weight × max posting weight of the term


class InvertedIndex:
    """Exact top-k by dot product over term-major postings."""

    def __init__(self, term_ptr: np.ndarray, postings_docs: np.ndarray, postings_weights: np.ndarray,
                 doc_ids: list[str], info: dict | None = None) -> None:
        self.info = info or {}  # provenance (model, idf file) kept for the caller; unused by search
        # Plain ndarray views of memory maps: np.memmap slices pay subclass overhead on every term.
        self.term_ptr = np.asarray(term_ptr)
        self.postings_docs = np.asarray(postings_docs)
        self.postings_weights = np.asarray(postings_weights)
        self.doc_ids = doc_ids
        self._doc_ids_array = np.asarray(doc_ids, dtype=object)
        self.vocab_size = len(term_ptr) - 1
        self._local = threading.local()  # one score buffer per thread: search is re-entrant

    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def nnz(self) -> int:
        return int(self.term_ptr[-1])

    @classmethod
    def from_csr(cls, docs: sp.csr_matrix, doc_ids: list[str], info: dict | None = None) -> InvertedIndex:
        """Build from a (documents × vocabulary) matrix; explicit zeros are dropped."""
        if docs.shape[0] != len(doc_ids):
            raise ValueError(f"{docs.shape[0]} vectors but {len(doc_ids)} ids")
        csc = sp.csc_matrix(docs, dtype=np.float32, copy=True)
        csc.eliminate_zeros()
        csc.sort_indices()
        return cls(csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data.astype(np.float32),
                   list(doc_ids), info)

    def save(self, path: str | Path) -> None:
        """Write the index folder atomically (built under a temp name, then renamed)."""
        with atomic_dir(path) as tmp:
            atomic_save_npy(tmp / "term_ptr.npy", self.term_ptr)
            atomic_save_npy(tmp / "postings_docs.npy", self.postings_docs)
            atomic_save_npy(tmp / "postings_weights.npy", self.postings_weights)
            atomic_write_json(tmp / "meta.json", {"format": FORMAT, "n_docs": len(self), "nnz": self.nnz,
                                                  "vocab_size": self.vocab_size, "info": self.info,
                                                  "doc_ids": self.doc_ids},
                              indent=None)

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> InvertedIndex:
        path = Path(path)
        meta_path = path / "meta.json"
        if not meta_path.exists():
            raise InputError("not an index folder (no meta.json)", path=path)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise InputError(f"unknown index format {meta.get('format')!r}", path=meta_path, field="format")
        mode = "r" if mmap else None
        return cls(np.load(path / "term_ptr.npy", mmap_mode=mode), np.load(path / "postings_docs.npy", mmap_mode=mode),
                   np.load(path / "postings_weights.npy", mmap_mode=mode), meta["doc_ids"], meta.get("info"))

    # -- per-term statistics, computed once on first search (the file format stays three arrays) --

    @cached_property
    def _term_max(self) -> np.ndarray:
        """Largest posting weight of each term (0 for a term with no postings): MaxScore's bound."""
        return self._term_reduce(np.maximum)

    @cached_property
    def _nonnegative(self) -> bool:
        """Bounds are only valid for non-negative postings (SPLADE's are); otherwise score everything."""
        return bool(self.nnz == 0 or self._term_reduce(np.minimum).min() >= 0)

    def _term_reduce(self, ufunc: np.ufunc) -> np.ndarray:
        out = np.zeros(self.vocab_size, dtype=np.float32)
        nonempty = np.flatnonzero(np.diff(self.term_ptr) > 0)
        if len(nonempty):
            out[nonempty] = ufunc.reduceat(self.postings_weights, self.term_ptr[nonempty])
        return out

    def _buffer(self) -> np.ndarray:
        """This thread's all-zero score array; every search leaves it all-zero again."""
        buf = getattr(self._local, "scores", None)
        if buf is None:
            buf = self._local.scores = np.zeros(len(self), dtype=np.float32)
        return buf

    # -- search --

    def _terms(self, term_ids: np.ndarray, weights: np.ndarray) -> _Terms:
        """Valid terms with postings, duplicates summed, ordered by falling bound (ties by term id)."""
        term_ids = np.asarray(term_ids, dtype=np.int64).ravel()
        weights = np.asarray(weights, dtype=np.float32).ravel()
        if len(term_ids) != len(weights):
            raise ValueError(f"{len(term_ids)} term ids but {len(weights)} weights")
        valid = (term_ids >= 0) & (term_ids < self.vocab_size) & (weights != 0)
        term_ids, weights = term_ids[valid], weights[valid]
        if len(term_ids) > 1 and not np.all(term_ids[1:] > term_ids[:-1]):
            term_ids, inverse = np.unique(term_ids, return_inverse=True)
            weights = np.bincount(inverse, weights=weights).astype(np.float32)
        starts, ends = self.term_ptr[term_ids], self.term_ptr[term_ids + 1]
        bounds = np.abs(weights.astype(np.float64)) * self._term_max[term_ids]
        order = np.lexsort((term_ids, -bounds))
        order = order[ends[order] > starts[order]]
        return _Terms(starts[order], ends[order], weights[order], bounds[order])

    def _add_term(self, scores: np.ndarray, terms: _Terms, i: int) -> np.ndarray:
        """``scores[docs] += weight × postings`` for term ``i``; a term lists each document once, so
        plain fancy-index addition is exact (no ``np.add.at`` needed). Returns the term's docs."""
        s, e = terms.starts[i], terms.ends[i]
        docs = self.postings_docs[s:e]
        scores[docs] += terms.weights[i] * self.postings_weights[s:e]
        return docs

    def scores(self, term_ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Dense scores of every document for one query (same summation order as :meth:`search`)."""
        terms = self._terms(term_ids, weights)
        scores = np.zeros(len(self), dtype=np.float32)
        for i in range(len(terms.weights)):
            self._add_term(scores, terms, i)
        return scores

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        """Exact top-k documents with score > 0, best first, ties by document row."""
        terms = self._terms(term_ids, weights)
        if k <= 0 or len(terms.weights) == 0:
            return self._hits(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), k)
        buf = self._buffer()
        try:
            rows, scores = self._search_terms(buf, terms, k)
        except BaseException:
            buf.fill(0)
            raise
        return self._hits(rows, scores, k)

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        """One :meth:`search` per query. (Measured: a batched sparse mat-mat was slower, because it
        cannot prune and must scan every posting of every query term.)"""
        return [self.search(ids, w, k) for ids, w in queries]

    def _search_terms(self, buf: np.ndarray, terms: _Terms, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidate rows (ascending) and their exact scores, a superset of the top-k.

        The k-th best score so far is bounded from below without de-duplicating the scanned lists:
        each list holds distinct documents, so the k-th largest partial score within any one list
        is a lower bound of the final k-th best score. Leaves ``buf`` all-zero.
        """
        n_terms = len(terms.weights)
        lengths = terms.ends - terms.starts
        postings_left = np.cumsum(lengths[::-1])[::-1]  # postings of terms i.. (still to scan)
        bound_left = np.cumsum(terms.bounds[::-1])[::-1] * (1 + _BOUND_SLACK)  # max score from terms i..
        bound_seen = np.cumsum(terms.bounds)  # max score from terms ..i
        prunable = self._nonnegative and bool(np.all(terms.weights > 0))
        scanned: list[np.ndarray] = []
        n_scanned = 0
        for i in range(n_terms):
            # Check only when a bound could stop here (the k-th score cannot exceed the bounds seen)
            # and the next list is at least half as long as all scanned ones: a check costs a pass
            # over the scanned lists, so failed checks cost at most twice the scanning.
            if (prunable and i > 0 and postings_left[i] >= _MIN_POSTINGS_TO_PRUNE
                    and 2 * lengths[i] >= n_scanned and bound_left[i] < bound_seen[i - 1]):
                theta = max(_kth_largest(buf[docs], k) for docs in scanned)
                if bound_left[i] < theta:
                    return self._finish_pruned(buf, terms, i, scanned, theta, bound_left, k)
            scanned.append(self._add_term(buf, terms, i))
            n_scanned += len(scanned[-1])
        theta = max(_kth_largest(buf[docs], k) for docs in scanned)
        rows = _unique(np.concatenate([docs[buf[docs] >= theta] for docs in scanned]))
        scores = buf[rows]
        _reset(buf, scanned)
        return rows, scores

    def _finish_pruned(self, buf: np.ndarray, terms: _Terms, first: int, scanned: list[np.ndarray],
                       theta: float, bound_left: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """MaxScore's second phase: only documents already seen can reach ``theta``; keep those whose
        partial score plus what is left can, then probe each remaining list for the survivors."""
        floor = theta - bound_left[first]
        rows = _unique(np.concatenate([docs[buf[docs] * (1 + _BOUND_SLACK) >= floor] for docs in scanned]))
        partial = buf[rows]
        _reset(buf, scanned)
        for i in range(first, len(terms.weights)):
            if i > first:
                keep = partial * (1 + _BOUND_SLACK) + bound_left[i] >= theta
                rows, partial = rows[keep], partial[keep]
            s, e = terms.starts[i], terms.ends[i]
            docs = self.postings_docs[s:e]
            if len(rows) <= len(docs):  # binary-search the shorter sorted list in the longer
                pos = np.minimum(np.searchsorted(docs, rows), len(docs) - 1)
                hit = np.flatnonzero(docs[pos] == rows)
                partial[hit] += terms.weights[i] * self.postings_weights[s + pos[hit]]
            else:
                pos = np.minimum(np.searchsorted(rows, docs), len(rows) - 1)
                hit = np.flatnonzero(rows[pos] == docs)
                partial[pos[hit]] += terms.weights[i] * self.postings_weights[s + hit]
            theta = max(theta, _kth_largest(partial, k))
        return rows, partial

    def _hits(self, rows: np.ndarray, scores: np.ndarray, k: int) -> SearchHits:
        """Top-k of the candidates with score > 0; ``rows`` ascending, so ties go to the lower row."""
        positive = scores > 0
        rows, scores = rows[positive], scores[positive]
        if k <= 0:
            rows, scores = rows[:0], scores[:0]
        elif len(rows) > k:
            kth = _kth_largest(scores, k)
            above = np.flatnonzero(scores > kth)
            ties = np.flatnonzero(scores == kth)[: k - len(above)]
            chosen = np.concatenate((above, ties))
            rows, scores = rows[chosen], scores[chosen]
        order = np.lexsort((rows, -scores))
        return SearchHits(self._doc_ids_array[rows[order]].tolist(), scores[order].astype(np.float32))


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The k-th largest value, or 0 when there are fewer than k (no threshold yet)."""
    if len(values) < k:
        return 0.0
    return float(np.partition(values, len(values) - k)[len(values) - k])


def _unique(rows: np.ndarray) -> np.ndarray:
    """Sorted distinct values. (Measured: numpy 2.4's hash-based ``np.unique`` is ~4x slower than a
    sort on these small int32 arrays.)"""
    rows = np.sort(rows)
    return rows[np.concatenate(([True], rows[1:] != rows[:-1]))] if len(rows) else rows


def _reset(buf: np.ndarray, scanned: list[np.ndarray]) -> None:
    """Zero the entries the scanned lists wrote: one memset once they cover a large part of it."""
    if sum(len(docs) for docs in scanned) * 4 < len(buf):
        for docs in scanned:
            buf[docs] = 0
    else:
        buf.fill(0)
