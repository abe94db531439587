"""``idfsplade`` command line: a thin layer that parses options and composes the library.

Each command module registers its commands on the shared Typer ``app``; every
:class:`~idfsplade.errors.IdfspladeError` becomes a one-line ``error: …`` and exit code 2.
"""

from __future__ import annotations

import os
import sys

# transformers' "Loading weights" / "Writing model shards" bars (tqdm, on by default) between our own
# progress lines; read when huggingface_hub is first imported, so set before any command module loads.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from idfsplade.cli import adapt, core, export, serve, train, update  # noqa: E402, F401  (each module registers its commands)
from idfsplade.cli.app import app, console  # noqa: E402
from idfsplade.errors import IdfspladeError  # noqa: E402


def main() -> None:
    try:
        app()
    except IdfspladeError as exc:
        from rich.markup import escape  # "pip install 'idfsplade[seismic]'" is not markup

        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:  # a command of an extra this install lacks (torch for encode, ...)
        from rich.markup import escape

        from idfsplade.extras import missing_extra_message

        message = missing_extra_message(exc)
        if message is None:
            raise
        console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(2)
