"""Metrics from ir-measures (pytrec_eval underneath): nDCG@10, Recall@100, MRR@10.

Judged pairs whose query id equals the document id are kept (ir-measures does not drop them; BEIR's
``ignore_identical_ids`` would, which is wrong for collections numbering both from 1).
"""

from __future__ import annotations

import ir_measures
from ir_measures import RR, R, nDCG

DEFAULT_MEASURES = {"nDCG@10": nDCG @ 10, "Recall@100": R @ 100, "MRR@10": RR @ 10}


def evaluate_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
                 measures: dict | None = None) -> dict[str, float]:
    """Mean of each measure over the judged queries; a query with no results counts as 0."""
    measures = measures or DEFAULT_MEASURES
    full_run = {qid: run.get(qid, {}) for qid in qrels}
    # ir-measures skips queries absent from the run; an empty ranking must still score 0.
    per_query = {name: {qid: 0.0 for qid in qrels} for name in measures}
    by_measure = {m: name for name, m in measures.items()}
    for metric in ir_measures.iter_calc(list(measures.values()), qrels,
                                        {q: r for q, r in full_run.items() if r}):
        per_query[by_measure[metric.measure]][metric.query_id] = metric.value
    return {name: sum(values.values()) / max(len(values), 1) for name, values in per_query.items()}
