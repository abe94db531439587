"""Index folders of any backend: built by name with validated knobs, reopened by what ``meta.json`` records.

An ``exact`` folder is :class:`~idfsplade.index.exact.InvertedIndex`'s own layout (its ``meta.json``
has no ``backend`` key). Any other backend writes a folder whose ``meta.json`` has format
:data:`FORMAT`, the document ids, ``info`` (provenance, query side, documents: the same as an exact
folder's) and one separate key, ``backend``::

    "backend": {"name": "seismic", "folder": "seismic", "options": {"heap_factor": 0.8, ...}}

``folder`` is the backend's own files inside the index folder (Seismic's index, the milvus-lite
database, the Lucene index), or absent for a Milvus server, whose ``options`` record ``uri``, ``db_name``
and ``collection`` (never the token: ``IDFSPLADE_MILVUS_TOKEN`` gives it when the folder is opened).

Opening (:func:`open_index`) needs neither torch nor the registry; a backend's extra is imported only
when a folder of that backend is opened, and a missing one is a one-line error naming the extra.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
from pathlib import Path

import numpy as np

from idfsplade.errors import InputError
from idfsplade.index.base import RowsById, SearchHits, read_index_meta

FORMAT = "idfsplade-backend-index/1"
BACKENDS = ("exact", "seismic", "milvus", "lucene")
TOKEN_ENV = "IDFSPLADE_MILVUS_TOKEN"
# Knobs that are connection details, not index settings: never written (token) or taken from the CLI's
# own --milvus-* flags.
_SECRET = ("token",)


def backend_knobs(name: str) -> dict[str, object]:
    """``{knob: default}`` of a backend's build (its keyword-only parameters; see ``docs/backends.md``)."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}", field="--backend")
    if name == "exact":
        return {}
    from idfsplade.index import registry

    module_name, class_name = registry._BACKENDS[name]
    import importlib

    module = importlib.import_module(module_name)  # backend modules import their extra lazily
    params = inspect.signature(getattr(module, class_name).build).parameters
    return {p: spec.default for p, spec in params.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY}


def parse_knobs(name: str, pairs: list[str]) -> dict[str, object]:
    """``["key=value", ...]`` to a backend's knobs, each converted to its default's type; an unknown
    knob or a value of the wrong type is a one-line error listing what the backend accepts."""
    knobs = backend_knobs(name)
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"--backend-opt takes key=value, got {pair!r}", field="--backend-opt")
        if key not in knobs:
            accepted = ", ".join(k for k in knobs if k not in _SECRET) or "none"
            raise InputError(f"backend {name!r} has no option {key!r} (accepted: {accepted})", field="--backend-opt")
        options[key] = _convert(key, value, knobs[key])
    return options


def _convert(key: str, value: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise InputError(f"option {key!r} takes a {type(default).__name__}, got {value!r}",
                         field="--backend-opt") from None
    return value


def build_index_folder(name: str, docs, doc_ids: list[str], out: str | Path, info: dict, options: dict,
                       attach=None) -> None:
    """Build ``docs`` with backend ``name`` (not ``exact``) into the index folder ``out``, atomically:
    the backend's files, ``attach(folder)``'s (query side, documents; what it returns goes into
    ``info``) and ``meta.json``. With a Milvus ``uri`` the collection lives on that server."""
    from idfsplade.atomic import atomic_dir, atomic_write_json
    from idfsplade.index.registry import build_backend

    if name == "exact" or name not in BACKENDS:
        raise ValueError(f"not a non-exact backend: {name!r}")
    options = dict(options)
    server = name == "milvus" and options.get("uri")
    if server:
        options.setdefault("token", os.environ.get(TOKEN_ENV, ""))
    with atomic_dir(out) as tmp:
        try:
            with _native_stdout_silenced():  # Seismic's Rust code prints its build log to fd 1
                backend = build_backend(name, docs, doc_ids, path=None if server else tmp / name, **options)
        except _milvus_errors() as exc:
            raise _unreachable(options.get("uri"), exc) from None
        close = getattr(backend, "close", None)
        if close is not None:
            close()
        recorded = {k: v for k, v in options.items() if k not in _SECRET}
        if name == "milvus":
            recorded.setdefault("collection", "idfsplade")
        extra = (attach(tmp) or {}) if attach is not None else {}
        entry = {"name": name, "options": recorded}
        if not server:
            entry["folder"] = name
        atomic_write_json(tmp / "meta.json", {
            "format": FORMAT, "n_docs": len(doc_ids), "vocab_size": int(docs.shape[1]), "nnz": int(docs.nnz),
            "info": {**info, **extra}, "doc_ids": list(doc_ids), "backend": entry}, indent=None)


@contextlib.contextmanager
def _native_stdout_silenced():
    """File descriptor 1 to /dev/null for the block (native code's prints bypass ``sys.stdout``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _milvus_errors() -> tuple[type[BaseException], ...]:
    try:
        from pymilvus import MilvusException
    except ImportError:
        return ()
    return (MilvusException,)


def _unreachable(uri: str | None, exc: BaseException) -> InputError:
    message = " ".join(str(getattr(exc, "message", "") or exc).split()) or type(exc).__name__
    where = f"the Milvus server at {uri}" if uri else "milvus-lite"
    return InputError(f"cannot use {where}: {message}", field="--milvus-uri" if uri else None)


def recorded_backend(path: str | Path) -> str:
    """The backend an index folder records (``exact`` for the embedded index's own layout)."""
    meta_path = Path(path) / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "exact"  # InvertedIndex.load reports it
    if isinstance(meta, dict) and meta.get("format") == FORMAT:
        return str(meta.get("backend", {}).get("name"))
    return "exact"


def open_index(path: str | Path):
    """The searchable index of a folder, whichever backend built it: an :class:`InvertedIndex` or a
    :class:`BackendIndex`; both have ``info``, ``vocab_size``, ``doc_ids`` and ``row_of``."""
    from idfsplade.index.exact import InvertedIndex

    if recorded_backend(path) == "exact":
        return InvertedIndex.load(path)
    return BackendIndex.load(path)


class BackendIndex(RowsById):
    """A non-exact backend's index folder behind the interface of :class:`InvertedIndex` that search and
    the service use: search, ``info``, ``vocab_size``, ``doc_ids``, ``row_of``; hits carry their rows."""

    def __init__(self, backend, name: str, doc_ids: list[str], vocab_size: int, info: dict, options: dict) -> None:
        self.backend = backend
        self.name = name
        self.doc_ids = doc_ids
        self.vocab_size = vocab_size
        self.info = info
        self.options = options

    @classmethod
    def load(cls, path: str | Path) -> BackendIndex:
        path = Path(path)
        meta = read_index_meta(path, FORMAT, "an index")
        entry = meta.get("backend")
        if not isinstance(entry, dict) or entry.get("name") not in BACKENDS[1:]:
            raise InputError(f"unknown backend {entry.get('name') if isinstance(entry, dict) else None!r}",
                             path=path / "meta.json", field="backend")
        name, options = entry["name"], dict(entry.get("options", {}))
        folder = path / entry["folder"] if entry.get("folder") else None
        backend = _open_backend(name, folder, options)
        return cls(backend, name, list(meta["doc_ids"]), int(meta["vocab_size"]), meta.get("info", {}), options)

    def _with_rows(self, hits: SearchHits) -> SearchHits:
        return SearchHits(hits.ids, hits.scores, np.array([self._rows[d] for d in hits.ids], dtype=np.intp))

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        return self._with_rows(self.backend.search(term_ids, weights, k))

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        return [self._with_rows(h) for h in self.backend.search_batch(queries, k)]

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()


def _open_backend(name: str, folder: Path | None, options: dict):
    if name == "seismic":
        from idfsplade.index import seismic

        seismic.require()
        return seismic.SeismicBackend.load(folder)
    if name == "lucene":
        from idfsplade.index import lucene

        lucene.require()
        return lucene.LuceneBackend.open(folder)
    from idfsplade.index import milvus

    milvus.require()
    collection = options.get("collection", "idfsplade")
    drop = float(options.get("drop_ratio_search", 0.0))
    uri = options.get("uri")
    try:
        if uri:
            return milvus.MilvusBackend.open(uri, collection, token=os.environ.get(TOKEN_ENV, ""),
                                             drop_ratio_search=drop, db_name=options.get("db_name", ""))
        return milvus.MilvusBackend.open(str(folder / milvus.DB_FILE), collection, drop_ratio_search=drop)
    except _milvus_errors() as exc:
        raise _unreachable(uri, exc) from None
