"""Errors that reach the user as one line (the CLI prints them without a traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class IdfspladeError(Exception):
    """Base class for every error the CLI reports as a one-line message."""


class InputError(IdfspladeError):
    """Bad user input, located as precisely as we can: file, line and field."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path, self.line, self.field = path, line, field


_warned: set[str] = set()


def notice(message: str) -> None:
    """One line on stderr for the user (a cache recomputed, a fallback taken); not a log record, so
    it shows even with library logging quiet."""
    print(f"idfsplade: {message}", file=sys.stderr)


def warn_once(message: str) -> None:
    """:func:`notice`, once per process for the same message."""
    if message not in _warned:
        _warned.add(message)
        notice(message)


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's ``main`` and exit with its code; an :class:`IdfspladeError` becomes one ``error: …``
    line on stderr and exit code 2, as in the CLI. The entry point of every ``benchmarks/*.py``."""
    try:
        code = main()
    except IdfspladeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
