"""What ``idfsplade search INDEX -q TEXT`` prints, one function shared by the console script's quick
path (:mod:`idfsplade.console`) and the Typer command (:mod:`idfsplade.cli.core`), so both print the
same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from idfsplade.errors import InputError


def print_hits(index_dir: Path, query: str, model: str | None = None, idf_path: str | None = None, k: int = 10,
               prune_ratio: float | None = None, explain: bool = False, hybrid: bool = False,
               hybrid_weight: float | None = None, hybrid_method: str | None = None) -> None:
    """What ``idfsplade search INDEX -q TEXT`` prints: one tab-separated line per hit (rank, id, score,
    and title and snippet when the index stores documents), and with ``explain`` a line of the matched
    tokens' ``idf×w_d`` contributions and their sum, the score. With ``hybrid`` the score is the fused
    one, and ``explain`` first gives both parts' scores (``-`` where a part did not return the document)
    and then the sparse part's contributions, which sum to the sparse score."""
    from idfsplade.search.hits import HitBuilder
    from idfsplade.search.hybrid import check_hybrid_options
    from idfsplade.search.index_folder import open_documents, open_hybrid, open_index_retriever

    if k < 1:
        raise InputError(f"--k must be at least 1, got {k}", field="--k")
    settings = check_hybrid_options(hybrid, hybrid_weight, hybrid_method)  # once per search, before any loading
    retriever, _ = open_index_retriever(index_dir, model, idf_path, prune_ratio)
    fusion = open_hybrid(index_dir, retriever, *settings) if settings is not None else None
    hits, _ = HitBuilder(retriever, open_documents(index_dir), hybrid=fusion).search(query, k, explain=explain)
    lines = []
    for hit in hits:
        line = f"{hit.rank}\t{hit.id}\t{hit.score:.4f}"
        if hit.title is not None:
            line += f"\t{hit.title}\t{hit.snippet}"
        lines.append(line)
        if explain and fusion is not None:
            lines.append(f"\t= fused(bm25 {_part(hit.lexical_score)}, sparse {_part(hit.sparse_score)})")
        if hit.explanation is not None:
            lines.append("\t= " + " + ".join(f"{c.token} {c.idf:.3f}×{c.weight:.3f}" for c in hit.explanation)
                         + f" = {sum(c.contribution for c in hit.explanation):.4f}")
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


def _part(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"
