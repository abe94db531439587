"""Add, replace and delete documents of a Milvus-backed index folder, keeping the folder consistent.

Only Milvus updates a built index in place (``upsert``/``delete`` by primary key); the exact index,
Seismic and Lucene are rebuilt by ``idfsplade index``. The rest of the folder follows each update: the
document ids (``meta.json``), the document store and the BM25 side-index of ``--hybrid`` (bm25s has no
incremental update, so it is rebuilt from the updated store: linear in the collection, ~1 s per 5k
documents here). Order makes an interruption harmless: an upsert writes the folder first (an id the
folder knows but Milvus does not yet is never returned), a delete updates Milvus first (an id Milvus no
longer has is never returned); rerunning the same command completes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from idfsplade.errors import InputError


def _open(index_dir: Path):
    from idfsplade.index.base import read_index_meta
    from idfsplade.index.folder import FORMAT, BackendIndex

    meta_path = index_dir / "meta.json"
    if not meta_path.is_file():
        raise InputError("not an index folder (no meta.json)", path=index_dir)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    name = meta.get("backend", {}).get("name") if meta.get("format") == FORMAT else "exact"
    if name != "milvus":
        raise InputError(f"only a milvus-backed index is updated in place (this one is {name}): rebuild it with "
                         "`idfsplade index`", path=index_dir)
    read_index_meta(index_dir, FORMAT, "an index")
    return meta, BackendIndex.load(index_dir)


def _rewrite(index_dir: Path, meta: dict, doc_ids: list[str], texts: dict[str, dict]) -> None:
    """The folder's ids, document store (old rows from the store, ``texts`` for the others) and BM25."""
    from idfsplade.atomic import atomic_write_json
    from idfsplade.data.store import DocumentStore, write_document_store
    from idfsplade.search.index_folder import _write_bm25

    info = dict(meta.get("info", {}))
    if "documents" in info:
        store = DocumentStore(index_dir)
        old = {d: row for row, d in enumerate(meta["doc_ids"])}
        staging = index_dir / ".update-corpus.jsonl"
        with staging.open("w", encoding="utf-8") as out:
            for doc_id in doc_ids:
                if doc_id in texts:
                    record = texts[doc_id]
                else:
                    doc = store.get(old[doc_id])
                    record = {"_id": doc.id, "title": doc.title, "text": doc.text}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        try:
            info.update(write_document_store(index_dir, staging, doc_ids))
        finally:
            staging.unlink(missing_ok=True)
        if "bm25" in info:
            info.update(_write_bm25(index_dir))
    atomic_write_json(index_dir / "meta.json", {**meta, "n_docs": len(doc_ids), "doc_ids": doc_ids, "info": info},
                      indent=None)


def upsert(index_dir: str | Path, encoded: str | Path, corpus: str | Path | None = None) -> tuple[int, int]:
    """Add or replace the documents of the encoded folder ``encoded``; returns ``(added, replaced)``.

    Their text comes from ``corpus`` (default: the corpus the vectors record) when the index stores
    documents. The vectors must come from the model the index was built with.
    """
    from idfsplade.data import iter_corpus
    from idfsplade.index.milvus import ID_FIELD, VECTOR_FIELD
    from idfsplade.vectors import load_csr

    index_dir = Path(index_dir)
    meta, index = _open(index_dir)
    try:
        docs, ids, enc_meta = load_csr(encoded)
        if docs.shape[1] != meta["vocab_size"]:
            raise InputError(f"the vectors have a {docs.shape[1]}-term vocabulary, the index {meta['vocab_size']}",
                             path=encoded)
        ours, theirs = meta.get("info", {}).get("model"), enc_meta.get("provenance", {}).get("model")
        if ours and theirs and ours != theirs:
            raise InputError(f"the vectors were encoded by {theirs!r}, the index by {ours!r}", path=encoded)
        texts: dict[str, dict] = {}
        if "documents" in meta.get("info", {}):
            corpus = corpus or enc_meta.get("provenance", {}).get("corpus")
            if not corpus or not Path(corpus).is_file():
                raise InputError("the index stores documents: pass --corpus with the upserted documents' text",
                                 path=encoded)
            wanted = set(ids)
            texts = {d.id: {"_id": d.id, "title": d.title, "text": d.text} for d in iter_corpus(corpus)
                     if d.id in wanted}
            if len(texts) != len(wanted):
                missing = next(i for i in ids if i not in texts)
                raise InputError(f"document {missing!r} is not in the corpus", path=corpus)
        known = set(meta["doc_ids"])
        new_ids = list(meta["doc_ids"]) + [i for i in ids if i not in known]
        _rewrite(index_dir, meta, new_ids, texts)
        docs = docs.tocsr()
        backend = index.backend
        for start in range(0, len(ids), 1000):
            rows = []
            for row in range(start, min(start + 1000, len(ids))):
                lo, hi = docs.indptr[row], docs.indptr[row + 1]
                rows.append({ID_FIELD: ids[row],
                             VECTOR_FIELD: dict(zip(docs.indices[lo:hi].tolist(), docs.data[lo:hi].tolist()))})
            backend.client.upsert(backend.collection, rows)
        backend.client.flush(backend.collection)
        replaced = sum(1 for i in ids if i in known)
        return len(ids) - replaced, replaced
    finally:
        index.close()


def delete(index_dir: str | Path, ids: list[str]) -> int:
    """Delete documents by id; every id must be in the index. Returns how many were deleted."""
    index_dir = Path(index_dir)
    meta, index = _open(index_dir)
    try:
        known = set(meta["doc_ids"])
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InputError(f"no document {unknown[0]!r} in the index", path=index_dir)
        if not ids:
            return 0
        backend = index.backend
        backend.client.delete(backend.collection, ids=list(ids))
        backend.client.flush(backend.collection)
        gone = set(ids)
        _rewrite(index_dir, meta, [d for d in meta["doc_ids"] if d not in gone], {})
        return len(gone)
    finally:
        index.close()
