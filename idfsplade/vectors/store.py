"""The sparse-matrix store: CSR as three ``.npy`` files plus ``meta.json``, memory-mappable.

The layout follows bm25s (plain ``.npy`` arrays + JSON) so that any tool can read it without
idfsplade: ``data.npy`` (float32 weights), ``indices.npy`` (term ids) and ``indptr.npy`` (row offsets), both int32
(int64 past 2^31 non-zeros), and ``meta.json`` with the shape and the row ids (document ids).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from idfsplade.errors import InputError, WriteError, disk_cause
from idfsplade.atomic import atomic_dir, atomic_save_npy, atomic_write_json
from idfsplade.integrity import (FILES_KEY, check_finite, check_offsets, check_range, damaged, load_npy, manifest,
                                 seal, verify_full, verify_quick, verify_seal)

_ARRAYS = ("data", "indices", "indptr")


def save_csr(path: str | Path, matrix: sp.csr_matrix, row_ids: list[str], extra: dict[str, Any] | None = None,
             atomic: bool = True) -> None:
    """Save a CSR matrix and its row ids as a folder; atomically by default (folder swap)."""
    matrix = sp.csr_matrix(matrix)
    if matrix.shape[0] != len(row_ids):
        raise ValueError(f"{matrix.shape[0]} rows but {len(row_ids)} row ids")
    matrix.sort_indices()

    def write(folder: Path) -> None:
        atomic_save_npy(folder / "data.npy", matrix.data.astype(np.float32, copy=False))
        # scipy needs one index dtype for indices and indptr (else it copies on load, losing the mmap).
        index_dtype = np.int32 if matrix.nnz < np.iinfo(np.int32).max else np.int64
        atomic_save_npy(folder / "indices.npy", matrix.indices.astype(index_dtype, copy=False))
        atomic_save_npy(folder / "indptr.npy", matrix.indptr.astype(index_dtype, copy=False))
        meta = {"format": "csr", "shape": list(matrix.shape), "nnz": int(matrix.nnz), "row_ids": list(row_ids)}
        meta.update(extra or {})
        meta[FILES_KEY] = manifest(folder)  # names, sizes, sha256 (idfsplade.integrity)
        atomic_write_json(folder / "meta.json", seal(meta), indent=None)

    if atomic:
        with atomic_dir(path) as tmp:
            write(tmp)
    else:
        Path(path).mkdir(parents=True, exist_ok=True)
        write(Path(path))


def rebuild_command(path: str | Path) -> str:
    """The command that rebuilds a vectors folder (named in every damaged-file error)."""
    return f"idfsplade encode DATASET --out {path}"


def load_csr(path: str | Path, mmap: bool = True, full_check: bool = False
             ) -> tuple[sp.csr_matrix, list[str], dict[str, Any]]:
    """Load a folder written by :func:`save_csr`; arrays are memory-mapped unless ``mmap=False``.

    Checked on every load: the recorded files' sizes, dtypes and shapes, the row offsets and the
    column ids' range (O(non-zeros), vectorised: every caller reads the whole matrix anyway), so a
    damaged folder is one line naming the file; ``full_check`` adds every file's sha256 and finite
    weights (``idfsplade check``)."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise InputError("not a sparse-matrix folder (no meta.json); `idfsplade encode DATASET --out FOLDER` "
                         "writes one", path=path)
    rebuild = rebuild_command(path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        shape = tuple(int(n) for n in meta["shape"])
        row_ids = list(meta["row_ids"])
    except (ValueError, KeyError, TypeError):
        raise damaged(meta_path, "unreadable metadata", rebuild) from None
    files = meta.get(FILES_KEY)
    if isinstance(files, dict):
        (verify_full if full_check else verify_quick)(path, files, rebuild)
    if full_check:
        verify_seal(meta, meta_path, rebuild)
    arrays = {name: load_npy(path / f"{name}.npy", rebuild, mmap) for name in _ARRAYS}
    if len(shape) != 2 or len(row_ids) != shape[0] or len(arrays["indptr"]) != shape[0] + 1:
        raise damaged(path / "indptr.npy", f"{len(arrays['indptr'])} offsets for {len(row_ids)} row ids and shape "
                      f"{list(shape)}", rebuild)
    if arrays["indices"].ndim != 1 or arrays["data"].shape != arrays["indices"].shape:
        raise damaged(path / "data.npy", f"shape {arrays['data'].shape} does not match the column ids' "
                      f"{arrays['indices'].shape}", rebuild)
    check_offsets(arrays["indptr"], len(arrays["indices"]), path / "indptr.npy", rebuild)
    check_range(arrays["indices"], 0, shape[1], path / "indices.npy", rebuild, "column id")
    if full_check:
        check_finite(arrays["data"], path / "data.npy", rebuild)
    matrix = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape, copy=False)
    return matrix, row_ids, meta


class SparseMatrixStore:
    """A resumable, shard-by-shard writer of a CSR matrix.

    Each shard is saved atomically as its own CSR folder; :meth:`finish` concatenates the shards into
    the final store and removes them. A job that is killed keeps every finished shard, and a rerun
    asks :meth:`has_shard` to skip them.
    """

    def __init__(self, path: str | Path, n_cols: int) -> None:
        self.path = Path(path)
        self.n_cols = n_cols
        self.shard_dir = self.path.with_name(self.path.name + ".shards")

    def _shard_path(self, index: int) -> Path:
        return self.shard_dir / f"shard-{index:06d}"

    def has_shard(self, index: int) -> bool:
        return (self._shard_path(index) / "meta.json").exists()

    def write_shard(self, index: int, matrix: sp.csr_matrix, row_ids: list[str]) -> None:
        if matrix.shape[1] != self.n_cols:
            raise ValueError(f"shard has {matrix.shape[1]} columns, store has {self.n_cols}")
        save_csr(self._shard_path(index), matrix, row_ids)

    @contextlib.contextmanager
    def reporting_refused_writes(self) -> Iterator[None]:
        """A refused write (full or read-only disk) while writing shards or the final store: the one
        line names the store, and says whether finished shards are kept for a resume; without any, the
        shard folder (its resume key alone) is removed, so nothing is left behind."""
        try:
            yield
        except WriteError as exc:
            finished = sorted(self.shard_dir.glob("shard-*/meta.json"))
            if not finished:
                shutil.rmtree(self.shard_dir, ignore_errors=True)
                raise WriteError(self.path, exc.cause) from None
            raise WriteError(self.path, exc.cause, f"{len(finished)} finished shard(s) are kept in "
                             f"{self.shard_dir.name} and a rerun resumes from them") from None

    def finish(self, n_shards: int, extra: dict[str, Any] | None = None) -> None:
        """Concatenate shards ``0..n_shards-1`` into the final store, then drop the shards."""
        parts, ids = [], []
        for i in range(n_shards):
            matrix, row_ids, _ = load_csr(self._shard_path(i), mmap=False)
            parts.append(matrix)
            ids.extend(row_ids)
        full = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, self.n_cols), dtype=np.float32)
        save_csr(self.path, full, ids, extra=extra)
        shutil.rmtree(self.shard_dir, ignore_errors=True)


def discard_stale_shards(path: str | Path, key: dict[str, Any]) -> None:
    """Before a (resumed) shard-by-shard write to ``path``: drop the finished shards of a killed run
    whose inputs differ from ``key`` (another model, corpus or setting), then record ``key`` for the
    next resume. Shards of the same inputs are kept: that is what makes the job resumable."""
    shard_dir = Path(path).with_name(Path(path).name + ".shards")
    key_path = shard_dir / "key.json"
    saved = json.loads(key_path.read_text(encoding="utf-8")) if key_path.exists() else None
    if saved != key:
        shutil.rmtree(shard_dir, ignore_errors=True)
        try:
            shard_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(key_path, key, indent=None)
        except (WriteError, OSError) as exc:
            shutil.rmtree(shard_dir, ignore_errors=True)  # no shard yet: nothing to keep for a resume
            cause = exc.cause if isinstance(exc, WriteError) else disk_cause(exc)
            if cause is None:
                raise
            raise WriteError(path, cause) from None
