"""One way to build any search backend by name, so callers never import an optional dependency.

Backends: ``exact`` (the embedded :class:`~idfsplade.index.exact.InvertedIndex`, no extra),
``seismic`` (approximate, ``idfsplade[seismic]``), ``milvus`` (exact, embedded or a server,
``idfsplade[milvus]``) and ``lucene`` (exact up to integer quantization, ``idfsplade[lucene]``).
Each returns an object implementing :class:`~idfsplade.index.base.SparseIndex`. Backend modules are
imported lazily: importing this registry costs nothing even when no extra is installed.
"""

from __future__ import annotations

import importlib
import inspect
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from idfsplade.errors import InputError
from idfsplade.index.base import SparseIndex
from idfsplade.index.exact import InvertedIndex

# name -> (module, class): the module has ``require()``, the class ``build(docs, doc_ids, path, **knobs)``.
_BACKENDS: dict[str, tuple[str, str] | None] = {
    "exact": None,  # built in, no extra
    "seismic": ("idfsplade.index.seismic", "SeismicBackend"),
    "milvus": ("idfsplade.index.milvus", "MilvusBackend"),
    "lucene": ("idfsplade.index.lucene", "LuceneBackend"),
}


def available_backends() -> list[str]:
    """Names of the backends whose optional dependencies are installed (and usable) here."""
    names = []
    for name, target in _BACKENDS.items():
        try:
            if target is not None:
                importlib.import_module(target[0]).require()
        except InputError:
            continue
        names.append(name)
    return names


def build_backend(name: str, docs: sp.csr_matrix, doc_ids: list[str], path: Path | None = None,
                  **options) -> SparseIndex:
    """Index ``docs`` (documents × vocabulary, one row per id in ``doc_ids``) with backend ``name``.

    ``path`` is where the backend keeps its files (``None``: in memory or a temporary folder);
    ``options`` are the backend's knobs (see ``docs/backends.md``). Unknown names, unknown knobs,
    missing extras and malformed documents raise :class:`InputError`.
    """
    if name not in _BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(_BACKENDS)}", field="backend")
    docs = _checked_documents(docs, doc_ids)
    if _BACKENDS[name] is None:
        _check_options(name, _build_exact, options)
        return _build_exact(docs, doc_ids, path, **options)
    module_name, class_name = _BACKENDS[name]
    module = importlib.import_module(module_name)
    module.require()
    build = getattr(module, class_name).build
    _check_options(name, build, options)
    return build(docs, list(doc_ids), path, **options)


def _build_exact(docs: sp.csr_matrix, doc_ids: list[str], path: Path | None = None) -> InvertedIndex:
    index = InvertedIndex.from_csr(docs, list(doc_ids))
    if path is not None:
        index.save(path)
    return index


def _check_options(name: str, build, options: dict) -> None:
    """Unknown knobs are user input errors, not ``TypeError``s from deep inside a backend."""
    params = inspect.signature(build).parameters
    knobs = [p for p, spec in params.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(knobs))
    if unknown:
        accepted = ", ".join(knobs) or "none"
        raise InputError(f"backend {name!r} has no option {unknown[0]!r} (accepted: {accepted})", field=unknown[0])


def _checked_documents(docs: sp.csr_matrix, doc_ids: list[str]) -> sp.csr_matrix:
    """A float32 CSR copy with sorted, summed indices and no explicit zeros, after validation.

    A copy, because callers often pass memory-mapped read-only matrices (``load_csr``) and every
    backend needs sorted rows.
    """
    if not sp.issparse(docs) or docs.ndim != 2:
        raise InputError(f"documents must be a 2-D scipy sparse matrix, got {type(docs).__name__}")
    if docs.shape[0] != len(doc_ids):
        raise InputError(f"{docs.shape[0]} document vectors but {len(doc_ids)} document ids")
    if len(set(doc_ids)) != len(doc_ids):
        duplicate = next(d for d, n in Counter(doc_ids).items() if n > 1)
        raise InputError(f"duplicate document id {duplicate!r}")
    docs = sp.csr_matrix(docs, dtype=np.float32, copy=True)
    if not np.isfinite(docs.data).all():
        row = int(np.searchsorted(docs.indptr, np.flatnonzero(~np.isfinite(docs.data))[0], side="right") - 1)
        raise InputError(f"document {doc_ids[row]!r} has a non-finite weight")
    docs.sum_duplicates()
    docs.eliminate_zeros()
    return docs
