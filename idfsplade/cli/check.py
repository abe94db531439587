"""``idfsplade check FOLDER``: verify every checksum of a folder idfsplade wrote (see :mod:`idfsplade.check`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from idfsplade.cli.app import app


@app.command()
def check(folders: Annotated[list[Path], typer.Argument(help="Index, encoded-vectors, BM25 or model folder(s), "
                                                              "or a training run's folder.")]) -> None:
    """Verify every file of a folder against the sizes and sha256 recorded when it was written, and
    bounds-check its offsets and ids in full; the first damaged file is one error line (exit 2)."""
    from idfsplade.check import check_folder

    for folder in folders:
        typer.echo(check_folder(folder).line(folder))
