"""Evaluation: metrics through ir-measures, TREC run files, and the results table."""

from idfsplade.evaluate.metrics import DEFAULT_MEASURES, evaluate_run
from idfsplade.evaluate.report import ResultRow, render_markdown, render_table
from idfsplade.evaluate.trec import read_trec_run, write_trec_run

__all__ = ["DEFAULT_MEASURES", "evaluate_run", "ResultRow", "render_markdown", "render_table",
           "read_trec_run", "write_trec_run"]
