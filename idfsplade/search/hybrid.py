"""Hybrid search: a lexical run (BM25) and the inference-free sparse run fused per query, still with no
model call at query time.

The fusion methods (OpenSearch's ``min_max`` and ``rrf``, and any a user registers) live in
:mod:`idfsplade.search.fusion`, one registered function each; their names are re-exported here.

Ties in a fused list are broken by document id, as :func:`~idfsplade.evaluate.write_trec_run` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits
from idfsplade.query.encoder import SparseQuery
from idfsplade.search.fusion import (  # noqa: F401  (re-exported: hybrid.py held them before fusion.py)
    DEFAULT_METHOD,
    DEFAULT_WEIGHT,
    FUSIONS,
    MIN_MAX,
    MIN_SCORE,
    RRF,
    RRF_RANK_CONSTANT,
    SINGLE_RESULT_SCORE,
    check_fusion,
    fuse,
    min_max_normalize,
    register_fusion,
    rrf_contributions,
)
from idfsplade.search.retriever import Retriever, Run

# How many candidates each part retrieves before fusing (OpenSearch recommends 100-200 per sub-query).
DEFAULT_DEPTH = 100


def fuse_runs(runs: Sequence[Run], weights: Sequence[float] | None = None, method: str = DEFAULT_METHOD,
              rank_constant: int = RRF_RANK_CONSTANT, k: int | None = None) -> Run:
    """:func:`fuse` for every query of the runs (a query absent from a run has an empty list there)."""
    qids = list(dict.fromkeys(q for run in runs for q in run))
    return {q: fuse([run.get(q, {}) for run in runs], weights, method, rank_constant, k) for q in qids}


def sparse_weights(weight: float | None, method: str) -> list[float] | None:
    """``[lexical, sparse]`` weights for a sparse-side ``weight``; ``None`` keeps OpenSearch's default
    (equal weights for min_max, unweighted for rrf)."""
    if weight is None:
        return None
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"the hybrid weight must be in [0, 1], got {weight}", field="weight")
    return [1.0 - weight, weight]


def resolve_settings(weight: float | None = None, method: str | None = None) -> tuple[float | None, str]:
    """``(sparse weight, method)`` with the defaults filled in (the registered method's
    ``default_weight``: the tuned one for min_max; RRF stays unweighted, as OpenSearch's) and checked:
    an :class:`InputError` for a bad method or weight. What ``evaluate --hybrid``, ``search --hybrid``
    and ``serve --hybrid`` all resolve their options with."""
    method = method or DEFAULT_METHOD
    if weight is None and method in FUSIONS:
        weight = FUSIONS[method].default_weight
    check_fusion(method, sparse_weights(weight, method), 2, RRF_RANK_CONSTANT)
    return weight, method


def check_hybrid_options(hybrid: bool, weight: float | None, method: str | None
                         ) -> tuple[float | None, str] | None:
    """``--hybrid-weight`` / ``--hybrid-method`` only with ``--hybrid``, and valid values (one-line errors).
    Returns the resolved ``(weight, method)`` with ``--hybrid``, else None. Shared by ``search`` (both
    paths), ``serve`` and ``evaluate``."""
    if not hybrid:
        if weight is not None or method is not None:
            raise InputError("--hybrid-weight and --hybrid-method need --hybrid", field="--hybrid")
        return None
    return resolve_settings(weight, method)


@dataclass(frozen=True)
class HybridSpec:
    """What ``evaluate_dataset`` fuses with each sparse model's run: ``lexical`` is ``bm25`` (plain) or
    ``bm25-stem`` (Snowball English); ``weight`` is the sparse side's weight."""

    lexical: str = "bm25-stem"
    weight: float | None = DEFAULT_WEIGHT
    method: str = DEFAULT_METHOD
    rank_constant: int = RRF_RANK_CONSTANT

    LEXICAL = {"bm25": None, "bm25-stem": "english"}

    def __post_init__(self) -> None:
        if self.lexical not in self.LEXICAL:
            raise InputError(f"hybrid lexical side must be one of {list(self.LEXICAL)}, got {self.lexical!r}",
                             field="lexical")
        check_fusion(self.method, sparse_weights(self.weight, self.method), 2, self.rank_constant)

    @property
    def stemmer(self) -> str | None:
        return self.LEXICAL[self.lexical]

    @property
    def label(self) -> str:
        weight = "" if self.weight is None else f" w={self.weight:g}"
        return f"{self.method}{weight}"

    def row_name(self, sparse: str) -> str:
        """The result row of ``sparse`` fused with this lexical side: ``hybrid bm25-stem+<sparse> (<label>)``."""
        return f"hybrid {self.lexical}+{sparse} ({self.label})"


class HybridRetriever:
    """Two retrievers (``lexical`` first, ``sparse`` second) queried together and fused per query.

    Each part retrieves ``max(k, depth)`` candidates before fusion, so a document ranked 30th by one
    part and 3rd by the other is still found. Implements the :class:`~idfsplade.search.Retriever`
    protocol; neither part calls a model at query time when both are BM25 / inference-free.
    """

    def __init__(self, lexical: Retriever, sparse: Retriever, weight: float | None = DEFAULT_WEIGHT,
                 method: str = DEFAULT_METHOD, depth: int = DEFAULT_DEPTH, rank_constant: int = RRF_RANK_CONSTANT,
                 name: str | None = None) -> None:
        self.weights = sparse_weights(weight, method)
        check_fusion(method, self.weights, 2, rank_constant)
        if depth < 1:
            raise InputError(f"depth must be >= 1, got {depth}", field="depth")
        self.lexical, self.sparse = lexical, sparse
        self.weight, self.method, self.depth, self.rank_constant = weight, method, depth, rank_constant
        self.name = name or f"hybrid {lexical.name}+{sparse.name}"

    def _fuse(self, lexical: dict[str, float], sparse: dict[str, float], k: int) -> dict[str, float]:
        return fuse([lexical, sparse], self.weights, self.method, self.rank_constant, k)

    def search(self, text: str, k: int = 10) -> SearchHits:
        return self.search_parts(text, k)[0]

    def search_parts(self, text: str, k: int = 10, query: SparseQuery | None = None
                     ) -> tuple[SearchHits, dict[str, float], dict[str, float]]:
        """The fused top ``k`` and each part's own ``{doc: score}`` (``lexical``, ``sparse``), as
        retrieved before fusion: what ``search --explain`` and the service show beside a fused score.
        ``query``: ``text`` already encoded by the sparse part's query encoder (an inference-free
        retriever's), so that a caller which needs the encoding too tokenizes the query once."""
        depth = max(k, self.depth)
        sparse_hits = (self.sparse.index.search(query.ids, query.weights, depth) if query is not None
                       else self.sparse.search(text, depth))
        lexical, sparse = ({d: float(s) for d, s in zip(h.ids, h.scores)}
                           for h in (self.lexical.search(text, depth), sparse_hits))
        fused = self._fuse(lexical, sparse, k)
        return SearchHits(list(fused), np.asarray(list(fused.values()), dtype=np.float32)), lexical, sparse

    def search_many(self, queries: dict[str, str], k: int = 100,
                    progress: Callable[[int], None] | None = None) -> Run:
        depth = max(k, self.depth)
        lexical = self.lexical.search_many(queries, k=depth)
        sparse = self.sparse.search_many(queries, k=depth, progress=progress)
        return {q: self._fuse(lexical.get(q, {}), sparse.get(q, {}), k) for q in queries}
