"""``idfsplade`` command line: a thin layer that parses options and composes the library.

Each command module registers its commands on the shared Typer ``app``; every
:class:`~idfsplade.errors.IdfspladeError` becomes a one-line ``error: …`` and exit code 2.
"""

from __future__ import annotations

import sys

# Library progress bars and warnings (transformers' "Loading weights", sentence-transformers' "Computing
# widget examples", ...) between our own progress lines; set before any command module loads them.
from idfsplade.quiet import quiet_libraries  # noqa: E402

quiet_libraries()

from idfsplade.cli import adapt, check, core, export, serve, train, update  # noqa: E402, F401  (each module registers its commands)
from idfsplade.cli.app import app, console  # noqa: E402
from idfsplade.errors import IdfspladeError, error_line  # noqa: E402


def main() -> None:
    try:
        app()
    except (IdfspladeError, OSError) as exc:  # OSError: only a full, read-only or forbidden disk (error_line)
        from rich.markup import escape  # "pip install 'idfsplade[seismic]'" is not markup

        line = error_line(exc)
        if line is None:
            raise
        console.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:  # a command of an extra this install lacks (torch for encode, ...)
        from rich.markup import escape

        from idfsplade.extras import missing_extra_message

        message = missing_extra_message(exc)
        if message is None:
            raise
        console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(2)
