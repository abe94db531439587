"""The ``idfsplade`` console script's entry point: ``idfsplade search INDEX -q TEXT`` straight to the
search, everything else to the Typer app (:func:`idfsplade.cli.main`). Outside ``idfsplade.cli`` on
purpose: importing that package loads every command module, and Typer, click and rich with them.

A one-query search does ~0.1 s of work; the CLI framework around it (Typer, which builds a pydantic
adapter per option, click and rich) costs more than that again at every start. So the plain form of
the command, with only the options below, is parsed here with ``argparse`` and runs the same function
as the Typer command (:func:`idfsplade.search.printing.print_hits`); anything else (``--help``,
``--queries``, an unknown or malformed option) goes to the Typer app, which parses and reports it as
always. ``tests/test_index_folder.py`` checks that both paths print the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    from idfsplade.quiet import quiet_libraries  # an older index's model fall-back loads transformers

    quiet_libraries()
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
    from idfsplade.search.printing import print_hits

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
