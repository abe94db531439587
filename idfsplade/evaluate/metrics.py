"""Metrics from ir-measures (pytrec_eval underneath): nDCG@10, Recall@100, MRR@10.

Judged pairs whose query id equals the document id are kept (ir-measures does not drop them; BEIR's
``ignore_identical_ids`` would, which is wrong for collections numbering both from 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import ir_measures
import numpy as np
from ir_measures import RR, R, nDCG

from idfsplade.errors import InputError

DEFAULT_MEASURES = {"nDCG@10": nDCG @ 10, "Recall@100": R @ 100, "MRR@10": RR @ 10}


def check_depth(k: int, measures: dict | None = None) -> None:
    """Refuse a run depth that would silently truncate a measure (``k=50`` caps Recall@100)."""
    deepest = max((getattr(m, "params", {}).get("cutoff") or 0) for m in (measures or DEFAULT_MEASURES).values())
    if k < deepest:
        raise InputError(f"k={k} would truncate the @{deepest} measures; retrieve at least {deepest}", field="k")


def per_query_scores(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
                     measures: dict | None = None) -> dict[str, dict[str, float]]:
    """``{measure name: {query id: value}}`` over every judged query; a query with no results scores 0."""
    measures = measures or DEFAULT_MEASURES
    # ir-measures skips queries absent from the run; an empty ranking must still score 0.
    per_query = {name: {qid: 0.0 for qid in qrels} for name in measures}
    by_measure = {m: name for name, m in measures.items()}
    for metric in ir_measures.iter_calc(list(measures.values()), qrels,
                                        {q: r for q, r in run.items() if r and q in qrels}):
        per_query[by_measure[metric.measure]][metric.query_id] = metric.value
    return per_query


def evaluate_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
                 measures: dict | None = None) -> dict[str, float]:
    """Mean of each measure over the judged queries; a query with no results counts as 0."""
    per_query = per_query_scores(qrels, run, measures)
    return {name: sum(values.values()) / max(len(values), 1) for name, values in per_query.items()}


@dataclass
class PairedComparison:
    """Run B against run A on the same judged queries: mean difference and two-sided paired t-test."""

    measure: str
    mean_a: float
    mean_b: float
    wins: int  # queries where B > A
    losses: int
    p_value: float

    @property
    def delta(self) -> float:
        return self.mean_b - self.mean_a


def paired_t_test(qrels: dict[str, dict[str, int]], run_a: dict[str, dict[str, float]],
                  run_b: dict[str, dict[str, float]], measure: str = "nDCG@10") -> PairedComparison:
    """Is B's difference from A more than per-query noise? The paired t-test over queries, the test
    IR evaluations report (Sakai 2014; ir-measures computes the scores, scipy the test)."""
    from scipy.stats import ttest_rel

    spec = {measure: DEFAULT_MEASURES[measure]}
    a = per_query_scores(qrels, run_a, spec)[measure]
    b = per_query_scores(qrels, run_b, spec)[measure]
    qids = sorted(a)
    xa, xb = np.array([a[q] for q in qids]), np.array([b[q] for q in qids])
    p_value = 1.0 if np.allclose(xa, xb) else float(ttest_rel(xb, xa).pvalue)
    return PairedComparison(measure, float(xa.mean()), float(xb.mean()), int((xb > xa).sum()),
                            int((xb < xa).sum()), p_value)
