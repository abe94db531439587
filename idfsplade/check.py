"""``idfsplade check FOLDER`` (and ``serve --check``): verify every checksum of a folder idfsplade wrote.

Composes the stores' own full checks (:mod:`idfsplade.integrity` holds the shared pieces): the kind of
folder is read from its metadata, every recorded file's size and sha256 is verified, and the values a
search would use (offsets, ids, weights) are bounds-checked in full. Torch-free: a model folder is
checked by its ``checksums.json`` alone, without loading it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from idfsplade.errors import InputError
from idfsplade.integrity import (FILES_KEY, MANIFEST_FILE, check_range, damaged, read_manifest_file, verify_full)

_MODEL_REBUILD = "idfsplade train CONFIG (or idfsplade adapt)"


@dataclass(frozen=True)
class CheckReport:
    """What was verified: the folder's kind, the files whose checksums matched, their bytes."""

    kind: str
    files: int
    bytes: int
    note: str = ""

    def line(self, folder: Path) -> str:
        text = f"{folder}: ok ({self.kind}; {self.files} files, {self.bytes:,} bytes verified)"
        return text + (f"; {self.note}" if self.note else "")


def _meta(folder: Path) -> dict | None:
    path = folder / "meta.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputError("unreadable metadata: the folder is damaged; rebuild it with the command that "
                         "wrote it", path=path) from None
    return meta if isinstance(meta, dict) else None


def _unrecorded(meta: dict) -> str:
    return "" if isinstance(meta.get(FILES_KEY), dict) else \
        "no checksums recorded (written by an older idfsplade: rebuild it to record them); structure checked"


def check_folder(folder: str | Path) -> CheckReport:
    """Fully verify ``folder`` (an index, encoded vectors, a BM25 side-index, a trained model or a
    training run); raises a one-line :class:`InputError` naming the first damaged file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", path=folder)
    meta = _meta(folder)
    fmt = meta.get("format") if meta else None
    if fmt == "idfsplade-inverted-index/1":
        return _check_index(folder, meta)
    if fmt == "csr":
        from idfsplade.vectors.store import load_csr

        load_csr(folder, full_check=True)
        return _report("encoded vectors", meta)
    if fmt == "idfsplade-bm25s-1":
        from idfsplade.search.bm25 import BM25Retriever

        BM25Retriever.load(folder, full_check=True)
        return _report("BM25 index", meta)
    files = read_manifest_file(folder)
    if files is not None:
        verify_full(folder, files, f"{_MODEL_REBUILD}, or copy the folder again")
        return CheckReport("model", len(files), sum(r.get("size", 0) for r in files.values()))
    if (folder / "SHA256SUMS").is_file():  # a packaged model (`sha256sum -c` format)
        files = _sha256sums(folder / "SHA256SUMS")
        verify_full(folder, files, "reinstall idfsplade, or copy the folder again")
        return CheckReport("model", len(files), sum((folder / name).stat().st_size for name in files))
    if (folder / "model").is_dir() and (folder / "config.json").is_file():  # a training run's folder
        report = check_folder(folder / "model")
        return CheckReport("training run's model", report.files, report.bytes, report.note)
    if (folder / "modules.json").is_file() or (folder / "config.json").is_file():
        raise InputError(f"a model folder without {MANIFEST_FILE} (not written by this idfsplade version, or "
                         f"the file was lost): nothing to verify", path=folder)
    raise InputError("not a folder idfsplade writes (an index, encoded vectors, a BM25 index or a model)",
                     path=folder)


def _sha256sums(path: Path) -> dict[str, dict]:
    files = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise InputError("not a `sha256sum` line", path=path, line=number)
        files[name.lstrip("*")] = {"sha256": digest}
    return files


def _report(kind: str, meta: dict) -> CheckReport:
    files = meta.get(FILES_KEY) or {}
    return CheckReport(kind, len(files), sum(r.get("size", 0) for r in files.values()), _unrecorded(meta))


def _check_index(folder: Path, meta: dict) -> CheckReport:
    """The inverted index in full, then what the folder carries: query side, documents, BM25."""
    from idfsplade.data.store import OFFSETS_FILE, has_document_store
    from idfsplade.index.exact import InvertedIndex, rebuild_command
    from idfsplade.query.artefact import has_query_side, load_from_folder
    from idfsplade.search.index_folder import BM25_DIR, check_query_side_present

    index = InvertedIndex.load(folder, full_check=True)
    rebuild = rebuild_command(folder)
    check_query_side_present(folder, index.info)
    if has_query_side(folder):
        side = load_from_folder(folder)
        if side.encoder.vocab_size != index.vocab_size:
            raise damaged(folder / "tokenizer.json", f"a {side.encoder.vocab_size}-term vocabulary for a "
                          f"{index.vocab_size}-term index", rebuild)
    if has_document_store(folder):
        offsets = np.load(folder / OFFSETS_FILE, mmap_mode="r")
        size = (folder / "documents.jsonl").stat().st_size
        if offsets.shape != (len(index), 2):
            raise damaged(folder / OFFSETS_FILE, f"shape {offsets.shape} for {len(index)} documents", rebuild)
        check_range(offsets.ravel(), 0, size + 1, folder / OFFSETS_FILE, rebuild, "byte offset")
        if len(offsets) and not np.all(offsets[:, 0] <= offsets[:, 1]):
            raise damaged(folder / OFFSETS_FILE, "a document ends before it starts", rebuild)
    if (folder / BM25_DIR / "meta.json").is_file():
        from idfsplade.search.bm25 import BM25Retriever

        lexical = BM25Retriever.load(folder / BM25_DIR, full_check=True)
        if lexical.doc_ids.tolist() != index.doc_ids:
            raise damaged(folder / BM25_DIR / "doc_ids.json", "its documents are not the index's", rebuild)
    return _report("index", meta)
