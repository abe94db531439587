"""``upsert`` and ``delete``: update a Milvus-backed index folder in place (:mod:`idfsplade.search.updates`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from idfsplade.cli.app import app, console
from idfsplade.errors import InputError


@app.command()
def upsert(index_dir: Annotated[Path, typer.Argument(help="A milvus-backed index folder.")],
           encoded: Annotated[Path, typer.Argument(help="Folder written by `idfsplade encode` with the documents "
                                                   "to add or replace (same model).")],
           corpus: Annotated[Optional[Path], typer.Option(help="corpus.jsonl with their text (default: the one "
                                                          "the vectors record); needed when the index stores "
                                                          "documents.")] = None) -> None:
    """Add or replace documents of a Milvus-backed index; its document store and BM25 follow."""
    from idfsplade.search.updates import upsert as run

    added, replaced = run(index_dir, encoded, corpus)
    console.print(f"{index_dir}: {added} added, {replaced} replaced")


@app.command()
def delete(index_dir: Annotated[Path, typer.Argument(help="A milvus-backed index folder.")],
           ids: Annotated[Optional[list[str]], typer.Argument(help="Document ids to delete.")] = None,
           ids_file: Annotated[Optional[Path], typer.Option(help="A file of ids, one per line.")] = None) -> None:
    """Delete documents of a Milvus-backed index by id; its document store and BM25 follow."""
    from idfsplade.search.updates import delete as run

    wanted = list(ids or [])
    if ids_file is not None:
        if not ids_file.is_file():
            raise InputError("file not found", path=ids_file)
        wanted += [line.strip() for line in ids_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not wanted:
        raise InputError("give the ids to delete (arguments or --ids-file)")
    console.print(f"{index_dir}: {run(index_dir, wanted)} deleted")
