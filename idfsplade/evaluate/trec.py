"""TREC run files: ``qid Q0 docid rank score tag``, written atomically."""

from __future__ import annotations

from pathlib import Path

from idfsplade.atomic import atomic_write_text
from idfsplade.errors import InputError


def trec_order(docs: dict[str, float]) -> list[tuple[str, float]]:
    """``(doc id, score)`` best first, ties by document id *descending*: the order trec_eval (and so
    pytrec_eval and ir-measures) evaluates a run in, whatever the file's rank column says. The written
    ranks follow it, so the file, its re-scoring and the reported metrics agree. (The index breaks
    ties by document row, which only decides which tied documents make a top-k cut.)"""
    return sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def write_trec_run(path: str | Path, run: dict[str, dict[str, float]], tag: str) -> None:
    """Write ``qid Q0 docid rank score tag`` lines, atomically.

    A query with no results has no line: the TREC format cannot hold an empty ranking. Re-score such
    a file with :func:`~idfsplade.evaluate.evaluate_run` and the judged queries (as ``evaluate``
    does), which counts a query absent from the run as 0, so the mean is over the same queries as the
    reported one; trec_eval's own default (without ``-c``) would average over fewer.
    """
    lines = []
    for qid, docs in run.items():
        ranked = trec_order(docs)
        lines.extend(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}" for rank, (doc, score) in enumerate(ranked, 1))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputError(f"expected 6 columns, got {len(parts)}", path=path, line=lineno)
            try:
                score = float(parts[4])
            except ValueError:
                raise InputError(f"score {parts[4]!r} is not a number", path=path, line=lineno,
                                 field="score") from None
            run.setdefault(parts[0], {})[parts[2]] = score
    return run
