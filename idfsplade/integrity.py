"""Checksums of the folders idfsplade writes, and the checks that make a damaged file an error.

Every folder a command writes (an index, encoded vectors, a BM25 side-index, a trained model) records,
at write time, a manifest of its files in its metadata: ``{name: {size, sha256[, dtype, shape]}}``,
names relative to the folder (never a machine path). Two levels of checking, as Lucene does with its
per-file checksum footers (``CodecUtil.checkFooter`` cheaply on open, ``CheckIndex`` fully on demand):

- :func:`verify_quick` on every open: each recorded file exists with its recorded size, and an ``.npy``
  file's header has its recorded dtype and shape. A few ``stat`` calls and header reads: cold start
  stays fast, and a truncated or missing file never reaches numpy (whose error is a traceback);
- :func:`verify_full` for ``idfsplade check`` and ``serve --check``: the sha256 of every file too.

Bounds checks on the values a search would otherwise use silently (offsets, ids) are the stores' own
(:func:`check_offsets`, :func:`check_range` are the shared pieces). Every failure is an
:class:`~idfsplade.errors.InputError` of one line naming the file and the command that rebuilds it.
Checked: numpy's ``.npy`` has no checksum, bm25s' folder neither, and safetensors only a header
length; no library provides a folder manifest, so this one is written here (hashlib, numpy's header reader).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from idfsplade.errors import InputError

FILES_KEY = "files"  # the manifest's key in a folder's meta.json
MANIFEST_FILE = "checksums.json"  # for folders without an idfsplade meta.json (a trained model)
MANIFEST_FORMAT = "idfsplade-checksums/1"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def npy_header(path: Path) -> tuple[str, list[int]]:
    """``(dtype, shape)`` from an ``.npy`` file's header (reads a few hundred bytes)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return np.dtype(dtype).str, list(shape)


def file_record(path: Path) -> dict:
    record: dict = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    if path.suffix == ".npy":
        record["dtype"], record["shape"] = npy_header(path)
    return record


def manifest(folder: str | Path, skip: tuple[str, ...] = ("meta.json",)) -> dict[str, dict]:
    """The manifest of every file under ``folder``, by name relative to it (POSIX separators), sorted;
    the top-level names in ``skip`` (the metadata file that will hold the manifest) and hidden files
    (temp files of a write in progress) are left out."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if not path.is_file() or name in skip or any(part.startswith(".") for part in Path(name).parts):
            continue
        files[name] = file_record(path)
    return files


def damaged(path: str | Path, what: str, rebuild: str) -> InputError:
    """The one-line error for a damaged file: ``PATH: WHAT: rebuild it with `REBUILD```."""
    return InputError(f"{what}; the folder is damaged: rebuild it with `{rebuild}`", path=path)


def verify_quick(folder: str | Path, files: dict[str, dict], rebuild: str) -> None:
    """Every recorded file exists with its recorded size (and ``.npy`` dtype and shape)."""
    folder = Path(folder)
    for name, record in files.items():
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise damaged(path, "missing", rebuild) from None
        expected = record.get("size")
        if expected is not None and size != expected:
            what = "truncated" if size < expected else "longer than written"
            raise damaged(path, f"{what} ({size} bytes, {expected} recorded)", rebuild)
        if "shape" in record:
            try:
                dtype, shape = npy_header(path)
            except (OSError, ValueError):
                raise damaged(path, "not a readable .npy file", rebuild) from None
            if dtype != record.get("dtype") or shape != record["shape"]:
                raise damaged(path, f"holds {dtype} {shape}, {record.get('dtype')} {record['shape']} recorded",
                              rebuild)


def verify_full(folder: str | Path, files: dict[str, dict], rebuild: str) -> int:
    """:func:`verify_quick`, then every file's sha256; returns the number of bytes hashed."""
    verify_quick(folder, files, rebuild)
    total = 0
    for name, record in files.items():
        path = Path(folder) / name
        if record.get("sha256") and sha256_file(path) != record["sha256"]:
            raise damaged(path, "checksum mismatch (changed on disk or in a copy)", rebuild)
        total += record.get("size", 0)
    return total


def load_npy(path: Path, rebuild: str, mmap: bool = True) -> np.ndarray:
    """``np.load`` (memory-mapped), with numpy's errors for a missing, cut or garbled file as one line."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise damaged(path, "missing", rebuild) from None
    except (OSError, ValueError, EOFError) as exc:
        raise damaged(path, f"unreadable ({str(exc).splitlines()[0][:100]})", rebuild) from None


def check_offsets(ptr: np.ndarray, n_values: int, path: Path, rebuild: str) -> None:
    """A CSR/CSC offsets array: starts at 0, never falls, ends at ``n_values``. O(len(ptr)), vectorised."""
    if ptr.ndim != 1 or len(ptr) == 0 or int(ptr[0]) != 0 or int(ptr[-1]) != n_values:
        first = int(ptr[0]) if ptr.ndim == 1 and len(ptr) else None
        last = int(ptr[-1]) if ptr.ndim == 1 and len(ptr) else None
        raise damaged(path, f"offsets run {first}..{last}, expected 0..{n_values}", rebuild)
    falls = np.flatnonzero(np.diff(ptr) < 0)
    if len(falls):
        raise damaged(path, f"offsets fall at position {int(falls[0]) + 1}", rebuild)


def check_range(values: np.ndarray, low: int, high: int, path: Path, rebuild: str, what: str = "value") -> None:
    """Every value in ``[low, high)``: two vectorised passes (min, max). O(len(values))."""
    if len(values) == 0:
        return
    lo, hi = int(values.min()), int(values.max())
    if lo < low or hi >= high:
        bad = lo if lo < low else hi
        position = int(np.flatnonzero(values == bad)[0])
        raise damaged(path, f"{what} {bad} at position {position} is out of range [{low}, {high})", rebuild)


def check_finite(values: np.ndarray, path: Path, rebuild: str) -> None:
    if len(values) and not np.isfinite(values).all():
        position = int(np.flatnonzero(~np.isfinite(values))[0])
        raise damaged(path, f"non-finite weight at position {position}", rebuild)


def write_manifest_file(folder: str | Path) -> dict:
    """For a folder written by a library (a saved model): ``checksums.json`` with the manifest of the
    rest of the folder. Returns the manifest."""
    from idfsplade.atomic import atomic_write_json

    files = manifest(folder, skip=(MANIFEST_FILE,))
    atomic_write_json(Path(folder) / MANIFEST_FILE, {"format": MANIFEST_FORMAT, FILES_KEY: files})
    return files


def read_manifest_file(folder: str | Path) -> dict | None:
    """The manifest :func:`write_manifest_file` wrote into ``folder``, or None when there is none."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT or not isinstance(data.get(FILES_KEY), dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise InputError("unreadable checksum manifest", path=path) from None
    return data[FILES_KEY]


def portable_path(value: str | Path, folder: str | Path) -> str:
    """What a folder records of a file it depends on: a path that exists, relative to ``folder`` (so the
    pair can move together and no machine path is written); anything else (an alias, a hub id) as is."""
    path = Path(value)
    if not path.exists():
        return str(value)
    return Path(os.path.relpath(path.resolve(), Path(folder).resolve())).as_posix()


def resolve_recorded(value: str | None, folder: str | Path) -> str | None:
    """The inverse of :func:`portable_path`: a recorded relative path that exists beside ``folder``
    resolved against it; an absolute path (older folders), an alias or a hub id as is."""
    if not value or Path(value).is_absolute():
        return value
    candidate = Path(os.path.normpath(Path(folder) / value))
    return str(candidate) if candidate.exists() else value


SEAL_KEY = "meta_sha256"  # the metadata's own checksum: meta.json holds the manifest, so none covers it


def _canonical(meta: dict) -> bytes:
    body = {key: value for key, value in meta.items() if key != SEAL_KEY}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def seal(meta: dict) -> dict:
    """``meta`` with the sha256 of its own content (canonical JSON, the seal itself left out)."""
    return {**{k: v for k, v in meta.items() if k != SEAL_KEY}, SEAL_KEY: hashlib.sha256(_canonical(meta)).hexdigest()}


def verify_seal(meta: dict, path: Path, rebuild: str) -> None:
    """For full checks: a sealed ``meta.json`` whose content changed (a flipped id, count or checksum
    that still parses) is damage. Unsealed metadata (older writers) passes."""
    expected = meta.get(SEAL_KEY)
    if expected is not None and hashlib.sha256(_canonical(meta)).hexdigest() != expected:
        raise damaged(path, "content changed since it was written (its own checksum does not match)", rebuild)
