"""``idfsplade`` command line: a thin layer that parses options and composes the library.

Each command module registers its commands on the shared Typer ``app``; every
:class:`~idfsplade.errors.IdfspladeError` becomes a one-line ``error: …`` and exit code 2.
"""

from __future__ import annotations

import sys

from idfsplade.cli import adapt, core, export, serve, train  # noqa: F401  (each module registers its commands)
from idfsplade.cli.app import app, console
from idfsplade.errors import IdfspladeError


def main() -> None:
    try:
        app()
    except IdfspladeError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
