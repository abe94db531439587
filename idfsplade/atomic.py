"""Atomic writes: a reader (or a resumed job) never sees a half-written file or folder.

Every writer goes through a temporary name in the same folder and ``os.replace``s it into place,
which is atomic on POSIX filesystems.

A disk that refuses a write (full, read-only, no permission: :data:`~idfsplade.errors.DISK_ERRNOS`)
is reported here, once for every writer: the temporary file or folder is removed, the previous
output is left as it was, and a :class:`~idfsplade.errors.WriteError` names the path being written
(the final one, never the temporary name) and the cause, which the CLI prints as one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np  # imported by atomic_save_npy only: the benchmarks' JSON writer needs no numpy

from idfsplade.errors import WriteError, disk_cause


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, and setting it from a worker thread would race.
_UMASK = _read_umask()


def _temp_file(path: Path) -> tuple[int, str]:
    """A temp file beside ``path``, with the permissions a plain ``open`` would give (mkstemp uses 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)
    return fd, tmp


def refusal_cause(exc: BaseException, where: str | Path) -> str | None:
    """``"ENOSPC: no space left on device"`` when ``exc`` is a disk refusing a write into ``where``
    (a folder), else None. Libraries report it their own way: an OSError with its errno (numpy, json,
    bm25s), a ``SafetensorError`` quoting ``os error 28``, or torch's bare ``RuntimeError`` from its zip
    writer ("unexpected pos", no errno), for which the filesystem is asked (read-only, or full)."""
    if isinstance(exc, WriteError):
        return exc.cause
    if isinstance(exc, OSError):
        cause = disk_cause(exc)
        if cause is None or (exc.filename and not _beside(exc.filename, Path(where) / "x")):
            return None  # not this write's (reading an input inside the block): reported with its own name
        return cause
    if not isinstance(exc, Exception):
        return None
    text = str(exc)
    match = re.search(r"os error (\d+)", text)
    if match:
        return disk_cause(OSError(int(match.group(1)), ""))
    if "inline_container.cc" in text or "PytorchStreamWriter" in text:
        return _probe(Path(where))
    return None


def _probe(folder: Path) -> str | None:
    """Why a write into ``folder`` failed, when the writer did not say: read-only, or (nearly) full."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return disk_cause(OSError(errno.EROFS, ""))
    if stat.f_bavail * stat.f_frsize < 1 << 20:
        return disk_cause(OSError(errno.ENOSPC, ""))
    return None


def _beside(filename: str | bytes | int, path: Path) -> bool:
    """Whether ``filename`` is ``path`` or in its folder (where the temporary names live)."""
    if not isinstance(filename, str):
        return False
    parent = os.path.abspath(path.parent)
    return os.path.abspath(filename).startswith(parent + os.sep) or os.path.abspath(filename) == parent


@contextlib.contextmanager
def refused_writes(path: str | Path, where: str | Path | None = None) -> Iterator[None]:
    """A disk's refusal inside the block (see :func:`refusal_cause`) becomes a :class:`WriteError`
    naming ``path`` (the final name, never a temporary one); other errors pass through unchanged."""
    try:
        yield
    except BaseException as exc:
        cause = refusal_cause(exc, where or Path(path).parent)
        if cause is None or (isinstance(exc, WriteError) and Path(exc.path) == Path(path)):
            raise
        raise WriteError(path, cause) from None


@contextlib.contextmanager
def _created_parents(path: Path) -> Iterator[list[Path]]:
    """Create ``path``'s missing parent folders; yields them (deepest first) so that a failed write can
    remove them again (:func:`_remove_empty`): a refused write leaves no empty folder behind."""
    created = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        yield created
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; one that is no longer empty (another writer's) stays
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success it is fsynced and renamed to ``path``,
    on failure removed (a refused write becomes a :class:`WriteError`). ``mode`` is ``"wb"`` or ``"w"``
    (UTF-8 text)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes only ('wb' or 'w'), got {mode!r}")
    path = Path(path)
    with refused_writes(path), _created_parents(path) as created:
        fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        cause = refusal_cause(exc, path.parent)  # asked before the temp file is removed
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_empty(created)
        if cause is None:
            raise
        raise WriteError(path, cause) from None


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a whole folder under a temporary name, then swap it into place.

    Yields the temporary folder; on success the old ``path`` (if any) is replaced, on failure the
    temporary folder is removed and ``path`` is left untouched (a refused write, by this code or a
    library writing into the folder, becomes a :class:`WriteError` naming ``path``).
    """
    path = Path(path)
    with refused_writes(path), _created_parents(path) as created:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        _swap_in(tmp, path)
    except BaseException as exc:
        cause = refusal_cause(exc, path.parent)  # asked before the temp folder is removed
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        if cause is None or (isinstance(exc, WriteError) and Path(exc.path) == path):
            raise
        raise WriteError(path, cause) from None


def _swap_in(tmp: Path, path: Path) -> None:
    """Replace ``path`` by ``tmp``; if the second rename fails, the old folder is put back."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
