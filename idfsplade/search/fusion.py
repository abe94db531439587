"""Fusion methods for hybrid search: one registered function per method, as ir_measures registers one
measure per item. :func:`fuse` looks a method up by name; ``--hybrid-method``, the service's
``hybrid_method``, :class:`~idfsplade.search.hybrid.HybridSpec` and their help text all read the
registry :data:`FUSIONS`, so a new method is one function and its registration::

    from idfsplade.search.fusion import register_fusion

    @register_fusion("max", summary="the larger weighted score")
    def max_fusion(lists, weights, rank_constant):
        fused = {}
        for weight, scores in zip(weights, lists):
            for doc, score in scores.items():
                fused[doc] = max(fused.get(doc, 0.0), weight * score)
        return fused

``lists`` are one query's ``{doc: score}`` per retriever (lexical first, then sparse), ``weights`` one
per list (1 each when none were given), ``rank_constant`` RRF's ``k`` for rank-based methods; the
function returns ``{doc: fused score}`` in any order (:func:`fuse` sorts, breaks ties by id and cuts).

The two built in are exactly what OpenSearch's hybrid query computes, so that a setting tuned here is
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

Fusion is a few dict operations per query, written here: ranx's ``fuse(norm="min-max", method="wsum" |
"rrf")`` was checked and has the same formulas but neither OpenSearch's 0.001 floor nor its
single-score rule (and it would add numba); bm25s and ir-measures do no fusion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from idfsplade.errors import InputError

FusionFunction = Callable[[Sequence[dict[str, float]], Sequence[float], int], dict[str, float]]


@dataclass(frozen=True)
class Fusion:
    """A registered fusion method: its function, a few words for the CLI help, and the sparse side's
    weight when none is given (``None``: every list weighs 1, OpenSearch's default)."""

    name: str
    combine: FusionFunction
    summary: str = ""
    default_weight: float | None = None


FUSIONS: dict[str, Fusion] = {}


def register_fusion(name: str, summary: str = "", default_weight: float | None = None
                    ) -> Callable[[FusionFunction], FusionFunction]:
    """Register the decorated ``(lists, weights, rank_constant) -> {doc: score}`` as fusion ``name``."""

    def register(combine: FusionFunction) -> FusionFunction:
        if name in FUSIONS:
            raise KeyError(f"a fusion method named {name!r} is already registered")
        FUSIONS[name] = Fusion(name, combine, summary, default_weight)
        return combine

    return register


MIN_MAX = "min_max"
RRF = "rrf"

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


@register_fusion(MIN_MAX, summary="normalization-processor, arithmetic mean", default_weight=DEFAULT_WEIGHT)
def min_max(lists: Sequence[dict[str, float]], weights: Sequence[float], rank_constant: int) -> dict[str, float]:
    """OpenSearch's min_max normalization + arithmetic mean (see the module docstring)."""
    fused: dict[str, float] = {}
    total = sum(weights)
    for weight, scores in zip(weights, lists):
        for doc, s in min_max_normalize(scores).items():
            fused[doc] = fused.get(doc, 0.0) + weight * s
    return {doc: s / total for doc, s in fused.items()}  # missing lists add 0 but keep their weight


@register_fusion(RRF, summary=f"k={RRF_RANK_CONSTANT}")
def rrf(lists: Sequence[dict[str, float]], weights: Sequence[float], rank_constant: int) -> dict[str, float]:
    """OpenSearch's score-ranker-processor: reciprocal rank fusion (see the module docstring)."""
    fused: dict[str, float] = {}
    for weight, scores in zip(weights, lists):
        for doc, s in rrf_contributions(scores, rank_constant).items():
            fused[doc] = fused.get(doc, 0.0) + weight * s
    return fused


def method_help() -> str:
    """The ``--hybrid-method`` help: every registered method, and the default."""
    names = [f"'{f.name}'" + (f" ({f.summary})" if f.summary else "") for f in FUSIONS.values()]
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
    return f"{listed}. Default: {DEFAULT_METHOD}."


def weight_help() -> str:
    """The ``--hybrid-weight`` help, with each method's default weight."""
    defaults = ", ".join(f"{f.default_weight:g} for {f.name}" if f.default_weight is not None
                         else f"unweighted for {f.name}" for f in FUSIONS.values())
    return f"Weight of the sparse side in [0, 1] (BM25 gets 1 - it). Default: {defaults}."


def check_fusion(method: str, weights: Sequence[float] | None, n_lists: int, rank_constant: int) -> None:
    if method not in FUSIONS:
        raise InputError(f"fusion method must be one of {list(FUSIONS)}, got {method!r}", field="method")
    if weights is not None:
        if len(weights) != n_lists:
            raise InputError(f"{len(weights)} weights for {n_lists} result lists", field="weights")
        if any(not 0.0 <= w <= 1.0 for w in weights) or sum(weights) <= 0:
            raise InputError(f"weights must lie in [0, 1] and not all be 0, got {list(weights)}", field="weights")
    if rank_constant < 1:
        raise InputError(f"rank_constant must be >= 1, got {rank_constant}", field="rank_constant")


def fuse(lists: Sequence[dict[str, float]], weights: Sequence[float] | None = None, method: str = DEFAULT_METHOD,
         rank_constant: int = RRF_RANK_CONSTANT, k: int | None = None) -> dict[str, float]:
    """Fuse one query's result lists (``{doc: score}`` each) into ``{doc: fused score}``, best first,
    with the registered method ``method`` (:data:`FUSIONS`).

    ``weights``: one per list; ``None`` gives every list weight 1 (equal weights). ``k``: keep the
    best ``k`` (all by default).
    """
    check_fusion(method, weights, len(lists), rank_constant)
    w = [1.0] * len(lists) if weights is None else [float(x) for x in weights]
    fused = FUSIONS[method].combine(lists, w, rank_constant)
    ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(ranked[:k] if k is not None else ranked)
