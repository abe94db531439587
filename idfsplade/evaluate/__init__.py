"""Evaluation: metrics through ir-measures, TREC run files, and the results table."""

from idfsplade.evaluate.metrics import DEFAULT_MEASURES, PairedComparison, evaluate_run, paired_t_test, per_query_scores
from idfsplade.evaluate.report import ResultRow, render_markdown, render_table
from idfsplade.evaluate.trec import read_trec_run, write_trec_run

__all__ = ["DEFAULT_MEASURES", "PairedComparison", "evaluate_run", "paired_t_test", "per_query_scores", "ResultRow", "render_markdown", "render_table",
           "read_trec_run", "write_trec_run"]
