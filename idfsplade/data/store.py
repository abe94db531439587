"""A document store beside an index: the documents' title and text, found by index row.

Two files, written into the index folder by ``idfsplade index`` / ``evaluate`` when the corpus is known:

- ``documents.jsonl``: the indexed documents as BEIR corpus lines (``_id``, ``title``, ``text``), in
  corpus order: itself a valid ``corpus.jsonl``, readable by any tool;
- ``documents.offsets.npy``: int64 ``(rows, 2)``, the byte range ``[start, end)`` of each index row's
  line in ``documents.jsonl``.

Reading memory-maps both, so opening the store costs nothing whatever its size and fetching a hit's
document is one slice and one ``json.loads``. The store is a copy, so the index keeps working when the
corpus it was built from moves or changes.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from idfsplade.atomic import atomic_open, atomic_save_npy
from idfsplade.data.beir import Document, iter_corpus
from idfsplade.errors import InputError
from idfsplade.integrity import load_npy

DOCUMENTS_FILE = "documents.jsonl"
OFFSETS_FILE = "documents.offsets.npy"


def write_document_store(folder: str | Path, corpus: str | Path, doc_ids: Sequence[str]) -> dict:
    """Copy the documents of ``doc_ids`` (an index's rows, in order) from ``corpus`` into ``folder``.

    Every id must be in the corpus (else the corpus is not the one the index was built from). Returns
    what the index records of the store: ``{"documents": {"file", "count", "bytes"}}``.
    """
    folder, corpus = Path(folder), Path(corpus)
    rows = {doc_id: row for row, doc_id in enumerate(doc_ids)}
    offsets = np.full((len(rows), 2), -1, dtype=np.int64)
    position = 0
    with atomic_open(folder / DOCUMENTS_FILE, "wb") as f:
        for doc in iter_corpus(corpus):
            row = rows.get(doc.id)
            if row is None:
                continue
            line = json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False)
            data = line.encode("utf-8") + b"\n"
            f.write(data)
            offsets[row] = (position, position + len(data) - 1)
            position += len(data)
        missing = np.flatnonzero(offsets[:, 0] < 0)
        if len(missing):
            raise InputError(f"{len(missing)} of the index's {len(rows)} documents are not in this corpus "
                             f"(first: {doc_ids[missing[0]]!r}); give the corpus they were encoded from",
                             path=corpus)
    atomic_save_npy(folder / OFFSETS_FILE, offsets)
    return {"documents": {"file": DOCUMENTS_FILE, "count": len(rows), "bytes": position}}


def has_document_store(folder: str | Path) -> bool:
    return (Path(folder) / DOCUMENTS_FILE).is_file() and (Path(folder) / OFFSETS_FILE).is_file()


class DocumentStore:
    """Documents by index row, memory-mapped (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.path = folder / DOCUMENTS_FILE
        self.offsets = load_npy(folder / OFFSETS_FILE, f"idfsplade index VECTORS --out {folder}")
        with self.path.open("rb") as f:
            size = f.seek(0, 2)
            # mmap of an empty file is an error; an empty store has nothing to read anyway
            self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    @classmethod
    def open(cls, folder: str | Path) -> DocumentStore | None:
        """The store in ``folder``, or None when the index has none."""
        return cls(folder) if has_document_store(folder) else None

    def __len__(self) -> int:
        return len(self.offsets)

    def get(self, row: int) -> Document:
        start, end = (int(x) for x in self.offsets[row])
        try:
            record = json.loads(self._data[start:end])
            return Document(record["_id"], record.get("title") or "", record["text"])
        except (ValueError, KeyError, TypeError):
            raise InputError(f"damaged document store at row {row}: rebuild the index", path=self.path) from None
