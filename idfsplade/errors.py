"""Errors that reach the user as one line (the CLI prints them without a traceback)."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path


class IdfspladeError(Exception):
    """Base class for every error the CLI reports as a one-line message."""


class InputError(IdfspladeError):
    """Bad user input, located as precisely as we can: file, line and field."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path, self.line, self.field = path, line, field


# The errors of a disk that cannot take a write, as the user should read them (one line, no traceback).
DISK_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted"}


class WriteError(IdfspladeError):
    """A write that the disk refused (full, read-only, no permission): names the path the command was
    writing and the cause. The atomic writers (:mod:`idfsplade.atomic`) raise it after removing their
    temporary files, so nothing partial is left and the previous output is untouched."""

    def __init__(self, path: str | Path, cause: str, note: str | None = None) -> None:
        super().__init__(f"{path}: cannot write ({cause}); "
                         + (note or "nothing was written, the previous output is unchanged"))
        self.path, self.cause = path, cause


def disk_cause(exc: BaseException) -> str | None:
    """``"ENOSPC: no space left on device"`` for an OSError of a disk that refused a write, else None."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return f"{errno.errorcode[exc.errno]}: {DISK_ERRNOS[exc.errno]}"
    return None


def error_line(exc: BaseException) -> str | None:
    """The one line (without ``error:``) an exception is reported as, or None for a bug (a traceback):
    an :class:`IdfspladeError`, or an OSError of a full, read-only or forbidden disk that escaped the
    atomic writers (a library writing on its own, a ``mkdir``), with the path it names."""
    if isinstance(exc, IdfspladeError):
        return str(exc)
    cause = disk_cause(exc)
    if cause is None:
        return None
    return f"{exc.filename}: {cause}" if getattr(exc, "filename", None) else f"a file could not be written ({cause})"


_warned: set[str] = set()


def notice(message: str) -> None:
    """One line on stderr for the user (a cache recomputed, a fallback taken); not a log record, so
    it shows even with library logging quiet."""
    print(f"idfsplade: {message}", file=sys.stderr)


def warn_once(message: str) -> None:
    """:func:`notice`, once per process for the same message."""
    if message not in _warned:
        _warned.add(message)
        notice(message)


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's ``main`` and exit with its code; an :class:`IdfspladeError` becomes one ``error: …``
    line on stderr and exit code 2, as in the CLI. The entry point of every ``benchmarks/*.py``; library
    progress bars are switched off first, as the CLI does (a script's own tables and logs stay)."""
    from idfsplade.quiet import quiet_libraries

    quiet_libraries()
    try:
        code = main()
    except (IdfspladeError, OSError) as exc:
        line = error_line(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
