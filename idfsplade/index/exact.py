"""The embedded exact inverted index: term-major postings (CSC), memory-mapped from ``.npy`` files.

Layout on disk (bm25s-style, readable without idfsplade): ``postings_docs.npy`` (int32 doc rows,
sorted within each term), ``postings_weights.npy`` (float32), ``term_ptr.npy`` (int64 offsets,
vocabulary + 1), and ``meta.json`` with the doc ids. Scores are exact dot products.

Search never builds a sparse matrix per query, as ``csc[:, term_ids] @ weights`` does, and never
scans every document's score for the top-k. Sums go into a reused per-thread float64 buffer:

- a query with few postings (``_EXHAUSTIVE_POSTINGS``) is gathered and summed in one vectorised pass;
- a larger one runs exact MaxScore (Turtle & Flood 1995): terms are taken by falling upper bound
  ``query weight × max posting weight``; once the bounds of the terms left sum to less than a lower
  bound of the k-th best score, no unseen document can enter the top-k, and the long lists of
  frequent, low-IDF terms are only binary-searched for the remaining candidates instead of scanned.

Only rows that can reach a lower bound of the k-th score are collected for the final selection.
Checked: bm25s scores BM25 with the same gather, exhaustively; PISA and Lucene run MaxScore over
compressed blocks in C++/Java, which numpy cannot express; an exhaustive numba loop measured 7x
slower than this on the benchmark's Zipf queries, so numba is not used. Timings against scipy:
``benchmarks/search_latency.py`` and ``docs/performance.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from idfsplade.atomic import atomic_dir, atomic_save_npy, atomic_write_json
from idfsplade.index.base import RowsById, SearchHits, read_index_meta
from idfsplade.integrity import (FILES_KEY, check_finite, check_offsets, check_range, damaged, load_npy, manifest,
                                 seal, verify_full, verify_quick, verify_seal)

if TYPE_CHECKING:  # scipy is imported where a matrix is built: loading and searching an index never need it
    import scipy.sparse as sp

FORMAT = "idfsplade-inverted-index/1"
_ARRAYS = ("term_ptr", "postings_docs", "postings_weights")


def rebuild_command(path: str | Path) -> str:
    """The command that rebuilds an index folder (named in every damaged-file error)."""
    return f"idfsplade index VECTORS --out {path}"

# Relative slack per query term on score bounds: sums are float64 (relative error up to 2^-53 per
# addition) and ranking rounds them to float32 (2^-24); a bound that is too tight could drop a true
# top-k document. Slack only costs a few more candidates.
_ROUNDING_SLACK = 2.0**-20
# A sum below a lower bound of the k-th best sum may still round to the same float32 and win the
# tie by row: candidates are kept down to this fraction of the bound (float32's ulp is 2^-23).
_FLOAT32_TIE = 1 - 2.0**-22
# Below this many postings left to scan, finishing exhaustively is cheaper than a pruning check.
_MIN_POSTINGS_TO_PRUNE = 2048
# Queries with at most this many postings are scored in one vectorised pass (~50 µs at ~1.5 ns per
# posting), cheaper than MaxScore's per-term numpy calls.
_EXHAUSTIVE_POSTINGS = 32_768


@dataclass(frozen=True)
class _Terms:
    """A query reduced to its terms with postings, in processing order (falling upper bound)."""

    starts: np.ndarray  # int64
    ends: np.ndarray  # int64
    weights: np.ndarray  # float64 copies of the float32 query weights
    bounds: np.ndarray  # float64, query weight × max posting weight of the term


class InvertedIndex(RowsById):
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
        self.path: Path | None = None  # the folder it was loaded from: named in a damaged-postings error
        self._local = threading.local()  # one score buffer per thread: search is re-entrant

    def term_weights(self, rows: np.ndarray | int, term_ids: np.ndarray) -> np.ndarray:
        """``w_d(t)`` of each document row for each of ``term_ids``: float32 ``(len(rows), len(term_ids))``
        (a vector for a single row), 0 where the document has no posting. One vectorised binary search
        per term over its row-sorted postings list, for all rows at once."""
        single = np.ndim(rows) == 0
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        term_ids = np.asarray(term_ids, dtype=np.int64).ravel()
        out = np.zeros((len(rows), len(term_ids)), dtype=np.float32)
        for i, term in enumerate(term_ids):
            if not 0 <= term < self.vocab_size:
                continue
            s, e = int(self.term_ptr[term]), int(self.term_ptr[term + 1])
            if e == s:
                continue
            docs = self.postings_docs[s:e]
            pos = np.minimum(np.searchsorted(docs, rows.astype(docs.dtype)), e - s - 1)
            hit = docs[pos] == rows
            out[hit, i] = self.postings_weights[s + pos[hit]]
        return out[0] if single else out

    @property
    def nnz(self) -> int:
        return int(self.term_ptr[-1])

    @classmethod
    def from_csr(cls, docs: sp.csr_matrix, doc_ids: list[str], info: dict | None = None) -> InvertedIndex:
        """Build from a (documents × vocabulary) matrix; explicit zeros are dropped."""
        import scipy.sparse as sp

        if docs.shape[0] != len(doc_ids):
            raise ValueError(f"{docs.shape[0]} vectors but {len(doc_ids)} ids")
        csc = sp.csc_matrix(docs, dtype=np.float32, copy=True)
        csc.eliminate_zeros()
        csc.sort_indices()
        return cls(csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data.astype(np.float32),
                   list(doc_ids), info)

    def save(self, path: str | Path, attach: Callable[[Path], dict | None] | None = None) -> None:
        """Write the index folder atomically (built under a temp name, then renamed).

        ``attach(folder)`` may add files of its own to the folder before it is swapped into place (the
        query side, a document store); what it returns is merged into ``info``. The index itself never
        reads them.
        """
        with atomic_dir(path) as tmp:
            atomic_save_npy(tmp / "term_ptr.npy", self.term_ptr)
            atomic_save_npy(tmp / "postings_docs.npy", self.postings_docs)
            atomic_save_npy(tmp / "postings_weights.npy", self.postings_weights)
            if attach is not None:
                self.info = {**self.info, **(attach(tmp) or {})}
            # every file of the folder (attached ones included), by name, size and sha256 (idfsplade.integrity)
            atomic_write_json(tmp / "meta.json", seal({"format": FORMAT, "n_docs": len(self), "nnz": self.nnz,
                                                       "vocab_size": self.vocab_size, "info": self.info,
                                                       FILES_KEY: manifest(tmp), "doc_ids": self.doc_ids}),
                              indent=None)

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True, full_check: bool = False) -> InvertedIndex:
        """Open an index folder (memory-mapped). Cheap checks on every open: the recorded files' sizes,
        dtypes and shapes, and the term offsets (O(vocabulary)); the postings' document rows are
        bounds-checked at the first search (:meth:`_term_max`). ``full_check`` verifies every file's
        sha256 and every posting now (``idfsplade check``)."""
        path = Path(path)
        meta = read_index_meta(path, FORMAT, "an index")
        rebuild = rebuild_command(path)
        files = meta.get(FILES_KEY)
        if isinstance(files, dict):
            (verify_full if full_check else verify_quick)(path, files, rebuild)
        if full_check:
            verify_seal(meta, path / "meta.json", rebuild)
        arrays = {name: load_npy(path / f"{name}.npy", rebuild, mmap) for name in _ARRAYS}
        doc_ids = meta.get("doc_ids")
        if not isinstance(doc_ids, list) or len(doc_ids) != meta.get("n_docs", len(doc_ids)):
            raise damaged(path / "meta.json", "its doc_ids do not match n_docs", rebuild)
        term_ptr, docs, weights = arrays["term_ptr"], arrays["postings_docs"], arrays["postings_weights"]
        if docs.ndim != 1 or weights.shape != docs.shape:
            raise damaged(path / "postings_weights.npy", f"shape {weights.shape} does not match the postings' "
                          f"{docs.shape}", rebuild)
        check_offsets(term_ptr, len(docs), path / "term_ptr.npy", rebuild)
        index = cls(term_ptr, docs, weights, doc_ids, meta.get("info"))
        index.path = path
        if full_check:
            index.validate_postings(full=True)
        return index

    def warm(self) -> None:
        """Compute the per-term bounds now, and with them bounds-check the postings, rather than at
        the first search: the service does it before it listens, so a damaged index never serves."""
        self._term_max  # noqa: B018 - a cached property, computed here

    def validate_postings(self, full: bool = False) -> None:
        """Every posting's document row in range (O(postings), vectorised); ``full``: every weight
        finite and rows strictly ascending within each term too (binary search needs it)."""
        path = self.path or Path("index")
        rebuild = rebuild_command(path)
        check_range(self.postings_docs, 0, len(self), path / "postings_docs.npy", rebuild, "document row")
        if not full:
            return
        check_finite(self.postings_weights, path / "postings_weights.npy", rebuild)
        if self.nnz > 1:
            rises = np.diff(self.postings_docs) > 0
            boundary = np.zeros(self.nnz - 1, dtype=bool)
            starts = self.term_ptr[1:-1]
            boundary[starts[(starts > 0) & (starts < self.nnz)] - 1] = True
            bad = np.flatnonzero(~rises & ~boundary)
            if len(bad):
                raise damaged(path / "postings_docs.npy", f"document rows out of order at position "
                              f"{int(bad[0]) + 1}", rebuild)

    # -- per-term statistics, computed once on first search (the file format stays three arrays) --

    @cached_property
    def _term_max(self) -> np.ndarray:
        """Largest posting weight of each term (0 for a term with no postings): MaxScore's bound.

        Computed at the first search, which reads every posting weight anyway: the postings are
        bounds-checked then too, so a damaged index fails before it returns a result."""
        self.validate_postings()
        out = self._term_reduce(np.maximum)
        if not np.isfinite(out).all():  # NaN and inf propagate into their term's maximum
            path = self.path or Path("index")
            raise damaged(path / "postings_weights.npy", "non-finite posting weight", rebuild_command(path))
        return out

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
        """This thread's all-zero float64 score array; every search leaves it all-zero again."""
        buf = getattr(self._local, "scores", None)
        if buf is None:
            buf = self._local.scores = np.zeros(len(self), dtype=np.float64)
        return buf

    # -- search --
    #
    # Arithmetic: each posting contributes query weight × posting weight, two float32 values whose
    # product is exact in float64; contributions are added in float64 to their document's sum in term
    # order (falling bound, ties by term id), whichever path adds them; a missing posting adds nothing,
    # and x + 0.0 == x. So every path gives bit-identical sums, and ranking and returned scores use
    # those sums rounded to float32.

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
        weights = weights.astype(np.float64)
        bounds = np.abs(weights) * self._term_max[term_ids]
        order = np.argsort(-bounds, kind="stable")  # term ids are ascending: ties go to the lower id
        order = order[ends[order] > starts[order]]
        return _Terms(starts[order], ends[order], weights[order], bounds[order])

    def _postings(self, terms: _Terms) -> tuple[np.ndarray, np.ndarray]:
        """All postings of the query's terms in term order: document rows (intp) and contributions
        (float64), gathered in a constant number of numpy calls however many terms there are."""
        lengths = terms.ends - terms.starts
        ends = np.cumsum(lengths)
        positions = np.arange(ends[-1]) + np.repeat(terms.starts - (ends - lengths), lengths)
        docs = self.postings_docs[positions].astype(np.intp)
        return docs, self.postings_weights[positions] * np.repeat(terms.weights, lengths)

    def _add_term(self, scores: np.ndarray, terms: _Terms, i: int) -> np.ndarray:
        """``scores[docs] += weight × postings`` for term ``i``; returns the term's docs (intp).

        Measured: ``np.add.at`` with intp indices and float64 values is ~35% faster than fancy-index
        ``+=`` and 30x faster than with int32 / float32 operands, so the rows are converted first.
        """
        s, e = terms.starts[i], terms.ends[i]
        docs = self.postings_docs[s:e].astype(np.intp)
        np.add.at(scores, docs, self.postings_weights[s:e] * terms.weights[i])
        return docs

    def scores(self, term_ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Dense float32 scores of every document for one query (the sums :meth:`search` ranks by)."""
        terms = self._terms(term_ids, weights)
        scores = np.zeros(len(self), dtype=np.float64)
        if len(terms.weights):
            np.add.at(scores, *self._postings(terms))
        return scores.astype(np.float32)

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        """Exact top-k documents with score > 0, best first, ties by document row."""
        terms = self._terms(term_ids, weights)
        if k <= 0 or len(terms.weights) == 0:
            return self._hits(np.zeros(0, dtype=np.intp), np.zeros(0), k)
        buf = self._buffer()
        try:
            rows, scores = self._search_terms(buf, terms, k)
        except BaseException:
            buf.fill(0)
            raise
        return self._hits(rows, scores, k)

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        """One :meth:`search` per query. Measured against one scipy sparse mat-mat per batch of 100
        (``docs/performance.md``): the mat-mat scans every posting of every term and costs 2-5x more
        per query on 100k and 1M documents; it is only ~15% cheaper on SciFact's 5k."""
        return [self.search(ids, w, k) for ids, w in queries]

    def _search_terms(self, buf: np.ndarray, terms: _Terms, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidate rows (ascending) and their exact sums, a superset of the top-k; leaves ``buf``
        all-zero. Few postings: all of them in one vectorised pass; else MaxScore, term by term."""
        n_terms = len(terms.weights)
        lengths = terms.ends - terms.starts
        postings_left = np.cumsum(lengths[::-1])[::-1]  # postings of terms i.. (still to scan)
        prunable = self._nonnegative and bool(np.all(terms.weights > 0))
        if not prunable or postings_left[0] <= _EXHAUSTIVE_POSTINGS:
            docs, contributions = self._postings(terms)
            np.add.at(buf, docs, contributions)  # sequential: same order as term by term
            eligible = np.flatnonzero(lengths >= k)[:1]  # the list _floor would pick
            first = [docs[postings_left[0] - postings_left[i]:][:lengths[i]] for i in eligible]
            return self._collect(buf, [docs], len(docs), _floor(buf, first, k))
        slack = 1 + (n_terms + 1) * _ROUNDING_SLACK
        bound_left = np.cumsum(terms.bounds[::-1])[::-1] * slack  # max score from terms i..
        bound_seen = np.cumsum(terms.bounds)  # max score from terms ..i
        scanned: list[np.ndarray] = []
        n_scanned = 0
        for i in range(n_terms):
            # Check only when a bound could stop here (the k-th score cannot exceed the bounds seen);
            # a check reads one scanned list (_floor), the first of k or more documents.
            if (i > 0 and postings_left[i] >= _MIN_POSTINGS_TO_PRUNE and bound_left[i] < bound_seen[i - 1]):
                theta = _floor(buf, scanned, k)
                if bound_left[i] < theta:
                    rows = _touched(buf, scanned, n_scanned, floor=(theta - bound_left[i]) / slack)
                    return self._finish_pruned(buf, terms, i, scanned, rows, theta, bound_left, slack, k)
            scanned.append(self._add_term(buf, terms, i))
            n_scanned += len(scanned[-1])
        return self._collect(buf, scanned, n_scanned, _floor(buf, scanned, k))

    @staticmethod
    def _collect(buf: np.ndarray, scanned: list[np.ndarray], n_scanned: int, floor: float
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Every touched row whose sum can be in the top-k (near ``floor`` or above, when it is
        positive) and its sum, then ``buf`` zeroed."""
        rows = _touched(buf, scanned, n_scanned, floor * _FLOAT32_TIE if floor > 0 else None)
        scores = buf[rows]
        _reset(buf, scanned, n_scanned)
        return rows, scores

    def _finish_pruned(self, buf: np.ndarray, terms: _Terms, first: int, scanned: list[np.ndarray],
                       rows: np.ndarray, theta: float, bound_left: np.ndarray, slack: float, k: int
                       ) -> tuple[np.ndarray, np.ndarray]:
        """MaxScore's second phase: no unseen document can reach ``theta``, so only the candidate
        ``rows`` need the remaining terms. A list much longer than the candidates is probed for them
        (binary search), after dropping the candidates whose sum plus what is left cannot reach
        ``theta``; a shorter one is simply scanned. Either way the sums stay in ``buf``, added in
        term order. Returns the candidates and their sums; leaves ``buf`` all-zero."""
        raised = False
        for i in range(first, len(terms.weights)):
            s, e = terms.starts[i], terms.ends[i]
            if e - s <= len(rows):  # filtering the candidates would cost as much as scanning
                scanned.append(self._add_term(buf, terms, i))
                continue
            if not raised:  # the candidates' k-th partial sum: a better lower bound, once
                theta, raised = max(theta, _kth_largest(buf[rows], k)), True
            rows = rows[buf[rows] * slack + bound_left[i] >= theta]
            if e - s < 4 * len(rows):  # measured: ~3 ns per scanned posting, ~11 ns per search
                scanned.append(self._add_term(buf, terms, i))
                continue
            docs = self.postings_docs[s:e]
            # Needles cast to the list's int32: mixed dtypes would convert the whole list.
            pos = np.minimum(np.searchsorted(docs, rows.astype(docs.dtype)), len(docs) - 1)
            hit = np.flatnonzero(docs[pos] == rows)
            buf[rows[hit]] += self.postings_weights[s + pos[hit]] * terms.weights[i]
        sums = buf[rows]
        keep = sums >= theta * _FLOAT32_TIE
        _reset(buf, scanned, sum(len(d) for d in scanned))  # candidates all come from scanned lists
        return rows[keep], sums[keep]

    def _hits(self, rows: np.ndarray, sums: np.ndarray, k: int) -> SearchHits:
        """Top-k of the candidates with score > 0; ``rows`` ascending, so ties go to the lower row."""
        scores = sums.astype(np.float32)
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
        return SearchHits(self._doc_ids_array[rows[order]].tolist(), scores[order], rows[order])


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The k-th largest value, or 0 when there are fewer than k (no threshold yet)."""
    if len(values) < k:
        return 0.0
    return float(np.partition(values, len(values) - k)[len(values) - k])


def _floor(buf: np.ndarray, lists: list[np.ndarray], k: int) -> float:
    """A lower bound of the k-th best sum: the k-th best partial sum within the first list (in bound
    order: a rare, high-weight term, whose documents lead) that has at least k documents. One list
    holds distinct documents, so no de-duplication is needed. 0 when no list has k documents."""
    first = next((docs for docs in lists if len(docs) >= k), None)
    return 0.0 if first is None else _kth_largest(buf[first], k)


def _touched(buf: np.ndarray, scanned: list[np.ndarray], n_scanned: int, floor: float | None = None
             ) -> np.ndarray:
    """Ascending distinct rows whose score is non-zero (or ``>= floor``): one pass over the buffer
    once the scanned lists cover 1/32 of it, else a sort of the scanned lists (measured: a sort
    costs ~12 ns per element, a buffer pass ~0.3 ns per document).

    Not ``np.unique``: numpy 2.4's is hash-based and measured ~5x slower than a sort here.
    """
    if n_scanned * 32 >= len(buf):
        return np.flatnonzero(buf != 0 if floor is None else buf >= floor)
    rows = np.concatenate(scanned)
    rows = rows[buf[rows] != 0 if floor is None else buf[rows] >= floor]
    rows.sort()
    return rows[np.concatenate(([True], rows[1:] != rows[:-1]))] if len(rows) else rows


def _reset(buf: np.ndarray, scanned: list[np.ndarray], n_scanned: int) -> None:
    """Zero what the scanned lists wrote: scattered zeros for a few postings, else one memset."""
    if n_scanned * 32 < len(buf):
        for docs in scanned:
            buf[docs] = 0
    else:
        buf.fill(0)
