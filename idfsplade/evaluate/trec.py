"""TREC run files: ``qid Q0 docid rank score tag``, written atomically."""

from __future__ import annotations

from pathlib import Path

from idfsplade.atomic import atomic_write_text
from idfsplade.errors import InputError


def write_trec_run(path: str | Path, run: dict[str, dict[str, float]], tag: str) -> None:
    lines = []
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
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
