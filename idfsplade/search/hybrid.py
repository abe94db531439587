"""Hybrid search: a lexical run (BM25) and the inference-free sparse run fused per query, still with no
model call at query time.

Two fusions, each exactly as OpenSearch's hybrid query computes it, so that a setting tuned here is
the one to put in an OpenSearch search pipeline (docs/opensearch.md, "Hybrid search"):

- ``min_max`` — the ``normalization-processor`` with ``normalization.technique: min_max`` and
  ``combination.technique: arithmetic_mean`` with ``weights``. Per query and per sub-query list:
  ``(s - min) / (max - min)`` over the scores that list returned; a score that normalises to exactly
  0 becomes ``0.001`` (so "returned last" stays above "not returned"), and when ``max == min`` every
  returned document gets ``1.0``. A document missing from a list scores 0 for that list, and its
  weight still counts: ``fused = Σ_i w_i · s_i / Σ_i w_i`` over *all* lists (neural-search's
  ``MinMaxScoreNormalizationTechnique`` and ``ArithmeticMeanScoreCombinationTechnique`` /
  ``ScoreCombiner``, checked in opensearch-project/neural-search).
- ``rrf`` — the ``score-ranker-processor`` (reciprocal rank fusion): ``Σ_i w_i / (k + rank_i)``,
  rank from 1 in each list, ``k = 60`` (``rank_constant``); no weights means 1 for every list, and a
  list a document is missing from contributes nothing.

Ties in a fused list are broken by document id, as :func:`~idfsplade.evaluate.write_trec_run` does.
Fusion is a few dict operations per query, written here: ranx's ``fuse(norm="min-max", method="wsum" |
"rrf")`` was checked and has the same formulas but neither OpenSearch's 0.001 floor nor its
single-score rule (and it would add numba); bm25s and ir-measures do no fusion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits
from idfsplade.search.retriever import Retriever, Run

MIN_MAX = "min_max"
RRF = "rrf"
METHODS = (MIN_MAX, RRF)

# OpenSearch's constants (MinMaxScoreNormalizationTechnique, RRFProcessor defaults).
MIN_SCORE = 0.001
SINGLE_RESULT_SCORE = 1.0
RRF_RANK_CONSTANT = 60

# The defaults, chosen on SciFact *train* (809 queries; never the test split) with stemmed BM25 and the
# untrained SPLADE-tiny used inference-free with corpus IDF: benchmarks/hybrid_tuning.py, numbers in
# benchmarks/results/hybrid_tuning.json. nDCG@10 there: min_max w=0.5 0.7159 (the best; w 0.3-0.6 all
# within 0.004), RRF 0.7024, stemmed BM25 alone 0.6960, SPLADE-tiny alone 0.6763. DEFAULT_WEIGHT is
# the weight of the sparse (learned) list; the lexical list gets 1 - DEFAULT_WEIGHT.
DEFAULT_METHOD = MIN_MAX
DEFAULT_WEIGHT = 0.5
# How many candidates each part retrieves before fusing (OpenSearch recommends 100-200 per sub-query).
DEFAULT_DEPTH = 100


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Best first; equal scores keep the list's own order (the retriever's rank)."""
    return sorted(scores.items(), key=lambda kv: -kv[1])


def min_max_normalize(scores: dict[str, float]) -> dict[str, float]:
    """OpenSearch ``min_max`` over one sub-query's returned scores (see the module docstring)."""
    if not scores:
        return {}
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    low, high = float(values.min()), float(values.max())
    if high == low:
        return {doc: SINGLE_RESULT_SCORE for doc in scores}
    out = {}
    for doc, s in scores.items():
        norm = (s - low) / (high - low)
        out[doc] = MIN_SCORE if norm == 0.0 else norm
    return out


def rrf_contributions(scores: dict[str, float], rank_constant: int = RRF_RANK_CONSTANT) -> dict[str, float]:
    """``1 / (rank_constant + rank)`` for each document of one list, rank 1 for the best score."""
    return {doc: 1.0 / (rank_constant + rank) for rank, (doc, _) in enumerate(_ranked(scores), 1)}


def _check(method: str, weights: Sequence[float] | None, n_lists: int, rank_constant: int) -> None:
    if method not in METHODS:
        raise InputError(f"fusion method must be one of {list(METHODS)}, got {method!r}", field="method")
    if weights is not None:
        if len(weights) != n_lists:
            raise InputError(f"{len(weights)} weights for {n_lists} result lists", field="weights")
        if any(not 0.0 <= w <= 1.0 for w in weights) or sum(weights) <= 0:
            raise InputError(f"weights must lie in [0, 1] and not all be 0, got {list(weights)}", field="weights")
    if rank_constant < 1:
        raise InputError(f"rank_constant must be >= 1, got {rank_constant}", field="rank_constant")


def fuse(lists: Sequence[dict[str, float]], weights: Sequence[float] | None = None, method: str = DEFAULT_METHOD,
         rank_constant: int = RRF_RANK_CONSTANT, k: int | None = None) -> dict[str, float]:
    """Fuse one query's result lists (``{doc: score}`` each) into ``{doc: fused score}``, best first.

    ``weights``: one per list; ``None`` gives every list weight 1 (equal weights). ``k``: keep the
    best ``k`` (all by default).
    """
    _check(method, weights, len(lists), rank_constant)
    w = [1.0] * len(lists) if weights is None else [float(x) for x in weights]
    fused: dict[str, float] = {}
    if method == MIN_MAX:
        total = sum(w)
        for weight, scores in zip(w, lists):
            for doc, s in min_max_normalize(scores).items():
                fused[doc] = fused.get(doc, 0.0) + weight * s
        fused = {doc: s / total for doc, s in fused.items()}  # missing lists add 0 but keep their weight
    else:
        for weight, scores in zip(w, lists):
            for doc, s in rrf_contributions(scores, rank_constant).items():
                fused[doc] = fused.get(doc, 0.0) + weight * s
    ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(ranked[:k] if k is not None else ranked)


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
    """``(sparse weight, method)`` with the defaults filled in (the tuned weight for min_max; RRF stays
    unweighted, as OpenSearch's) and checked: an :class:`InputError` for a bad method or weight. What
    ``evaluate --hybrid``, ``search --hybrid`` and ``serve --hybrid`` all resolve their options with."""
    method = method or DEFAULT_METHOD
    if weight is None and method == MIN_MAX:
        weight = DEFAULT_WEIGHT
    _check(method, sparse_weights(weight, method), 2, RRF_RANK_CONSTANT)
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
        _check(self.method, sparse_weights(self.weight, self.method), 2, self.rank_constant)

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
        _check(method, self.weights, 2, rank_constant)
        if depth < 1:
            raise InputError(f"depth must be >= 1, got {depth}", field="depth")
        self.lexical, self.sparse = lexical, sparse
        self.weight, self.method, self.depth, self.rank_constant = weight, method, depth, rank_constant
        self.name = name or f"hybrid {lexical.name}+{sparse.name}"

    def _fuse(self, lexical: dict[str, float], sparse: dict[str, float], k: int) -> dict[str, float]:
        return fuse([lexical, sparse], self.weights, self.method, self.rank_constant, k)

    def search(self, text: str, k: int = 10) -> SearchHits:
        return self.search_parts(text, k)[0]

    def search_parts(self, text: str, k: int = 10) -> tuple[SearchHits, dict[str, float], dict[str, float]]:
        """The fused top ``k`` and each part's own ``{doc: score}`` (``lexical``, ``sparse``), as
        retrieved before fusion: what ``search --explain`` and the service show beside a fused score."""
        depth = max(k, self.depth)
        lexical, sparse = ({d: float(s) for d, s in zip(h.ids, h.scores)}
                           for h in (r.search(text, depth) for r in (self.lexical, self.sparse)))
        fused = self._fuse(lexical, sparse, k)
        return SearchHits(list(fused), np.asarray(list(fused.values()), dtype=np.float32)), lexical, sparse

    def search_many(self, queries: dict[str, str], k: int = 100,
                    progress: Callable[[int], None] | None = None) -> Run:
        depth = max(k, self.depth)
        lexical = self.lexical.search_many(queries, k=depth)
        sparse = self.sparse.search_many(queries, k=depth, progress=progress)
        return {q: self._fuse(lexical.get(q, {}), sparse.get(q, {}), k) for q in queries}
