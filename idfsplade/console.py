"""The ``idfsplade`` console script's entry point: ``idfsplade search INDEX -q TEXT`` straight to the
search, everything else to the Typer app (:func:`idfsplade.cli.main`). Outside ``idfsplade.cli`` on
purpose: importing that package loads every command module, and Typer, click and rich with them.

A one-query search does ~0.1 s of work; the CLI framework around it (Typer, which builds a pydantic
adapter per option, click and rich) costs more than that again at every start. So the plain form of
the command, with only the options below, is parsed here with ``argparse`` and runs the same function
as the Typer command (:func:`print_hits`); anything else (``--help``, ``--queries``, an unknown or
malformed option) goes to the Typer app, which parses and reports it as always. ``tests/test_index_folder.py``
checks that both paths print the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    code = quick_search(sys.argv[1:])
    if code is None:
        from idfsplade.cli import main as full_main

        full_main()
        return
    sys.exit(code)


class _Unsupported(Exception):
    """Not the plain form: leave it to the Typer app."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # never print or exit here: Typer reports its own errors
        raise _Unsupported(message)


def _parser() -> _Parser:
    parser = _Parser(add_help=False, allow_abbrev=False, prog="idfsplade search")
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("--query", "-q", required=True)
    parser.add_argument("--model", "-m")
    parser.add_argument("--idf", dest="idf_path")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--prune-ratio", type=float)
    parser.add_argument("--explain", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--hybrid", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--hybrid-weight", type=float)
    parser.add_argument("--hybrid-method")
    return parser


def quick_search(argv: list[str]) -> int | None:
    """Run ``search INDEX -q TEXT [options]`` and return its exit code, or None when ``argv`` is not that."""
    if not argv or argv[0] != "search" or any(a in ("--help", "-h") for a in argv):
        return None
    try:
        args = _parser().parse_args(argv[1:])
    except _Unsupported:
        return None
    from idfsplade.errors import IdfspladeError

    try:
        print_hits(**vars(args))
    except IdfspladeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an older index without a query side needs the model (torch)
        from idfsplade.extras import missing_extra_message

        if (message := missing_extra_message(exc)) is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def print_hits(index_dir: Path, query: str, model: str | None = None, idf_path: str | None = None, k: int = 10,
               prune_ratio: float | None = None, explain: bool = False, hybrid: bool = False,
               hybrid_weight: float | None = None, hybrid_method: str | None = None) -> None:
    """What ``idfsplade search INDEX -q TEXT`` prints: one tab-separated line per hit (rank, id, score,
    and title and snippet when the index stores documents), and with ``explain`` a line of the matched
    tokens' ``idf×w_d`` contributions and their sum, the score. With ``hybrid`` the score is the fused
    one, and ``explain`` first gives both parts' scores (``-`` where a part did not return the document)
    and then the sparse part's contributions, which sum to the sparse score."""
    from idfsplade.errors import InputError
    from idfsplade.search.hits import HitBuilder
    from idfsplade.search.index_folder import open_documents, open_hybrid, open_index_retriever

    if k < 1:
        raise InputError(f"--k must be at least 1, got {k}", field="--k")
    check_hybrid_options(hybrid, hybrid_weight, hybrid_method)
    retriever, _ = open_index_retriever(index_dir, model, idf_path, prune_ratio)
    fusion = open_hybrid(index_dir, retriever, hybrid_weight, hybrid_method) if hybrid else None
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


def check_hybrid_options(hybrid: bool, weight: float | None, method: str | None
                         ) -> tuple[float | None, str] | None:
    """``--hybrid-weight`` / ``--hybrid-method`` only with ``--hybrid``, and valid values (one-line errors).
    Returns the resolved ``(weight, method)`` with ``--hybrid``, else None. Shared by ``search`` (both
    paths), ``serve`` and ``evaluate``."""
    from idfsplade.errors import InputError

    if not hybrid:
        if weight is not None or method is not None:
            raise InputError("--hybrid-weight and --hybrid-method need --hybrid", field="--hybrid")
        return None
    from idfsplade.search.hybrid import resolve_settings

    return resolve_settings(weight, method)
