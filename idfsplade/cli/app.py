"""The ``idfsplade`` Typer app, its consoles and progress bars, shared by every command module."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Inference-free learned sparse retrieval: idf, encode, index, search, evaluate.")
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 140)  # tables must not wrap in logs


@contextlib.contextmanager
def progress_factory() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields ``make(description, total) -> advance(n)``, each a bar of one rich Progress."""
    # imported here: `idfsplade search -q` never draws a bar, and rich.progress costs ~30 ms at startup
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=not console.is_terminal) as progress:
        def make(description: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)

        yield make


def enable_stage_logging() -> None:
    """Print the library's ``idfsplade`` INFO messages (stages of long jobs, with their durations) to stderr."""
    logger = logging.getLogger("idfsplade")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # libraries that call logging.basicConfig would print every line twice
