"""Encoding in shards: ``encode --shard I/N`` writes a deterministic 1/N of a corpus, ``index`` merges them.

The split follows pyserini's convention (contiguous ranges by position in the corpus file), with one
refinement: shard boundaries fall on the encoder's resumable chunks (``chunk`` documents, 1,024 by
default), so each document is encoded in exactly the batch it would be in an unsharded run and the
merged vectors are bit-identical to it (batch composition changes padding, hence float rounding).
Each shard's ``meta.json`` records ``shard`` (index, count, rows, chunk, corpus size) beside the
``key`` every encoded folder has (model and corpus fingerprints, truncation, pruning), which is what
:func:`load_encoded` checks before it concatenates.
"""

from __future__ import annotations

import json
from pathlib import Path

from idfsplade.errors import InputError

DEFAULT_CHUNK = 1024


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (0 ≤ I < N) to ``(I, N)``; anything else is a one-line error."""
    left, sep, right = text.partition("/")
    try:
        index, count = int(left), int(right)
    except ValueError:
        index = count = -1
    if not sep or count < 1 or not 0 <= index < count:
        raise InputError(f"--shard takes I/N with 0 <= I < N (e.g. 0/4), got {text!r}", field="--shard")
    return index, count


def shard_range(index: int, count: int, n_docs: int, chunk: int = DEFAULT_CHUNK) -> tuple[int, int]:
    """Rows ``[start, stop)`` of shard ``index`` of ``count``: contiguous, whole chunks, sizes within one chunk."""
    chunks = -(-n_docs // chunk)
    first, last = index * chunks // count, (index + 1) * chunks // count
    return min(first * chunk, n_docs), min(last * chunk, n_docs)


def load_encoded(folders: list[Path]):
    """One encoded folder, or every shard of one corpus, as ``(matrix, row_ids, meta)``.

    Shards must share the same ``key`` (model, corpus, truncation, pruning), shard count and chunk, and
    be each present exactly once; they are concatenated in shard order. ``meta`` is the first shard's,
    without its ``shard`` entry.
    """
    import scipy.sparse as sp

    from idfsplade.vectors.store import load_csr

    if len(folders) == 1 and "shard" not in _meta(folders[0]):
        return load_csr(folders[0])
    metas = [_meta(f) for f in folders]
    unsharded = [f for f, m in zip(folders, metas) if "shard" not in m]
    if unsharded:
        raise InputError("not a shard (written without `encode --shard I/N`): give one unsharded folder or "
                         "every shard", path=unsharded[0])
    first = metas[0]
    count = first["shard"]["count"]
    seen: dict[int, Path] = {}
    for folder, meta in zip(folders, metas):
        shard = meta["shard"]
        if meta.get("key") != first.get("key"):
            differs = sorted(k for k in set(meta.get("key", {})) | set(first.get("key", {}))
                             if meta.get("key", {}).get(k) != first.get("key", {}).get(k))
            raise InputError(f"shard of different inputs than {folders[0]} ({', '.join(differs)} differ)",
                             path=folder)
        if (shard["count"], shard["chunk"], shard["corpus_docs"]) != (count, first["shard"]["chunk"],
                                                                       first["shard"]["corpus_docs"]):
            raise InputError(f"shard {shard['index']}/{shard['count']} does not match {folders[0]}'s split "
                             f"({first['shard']['index']}/{count})", path=folder)
        if shard["index"] in seen:
            raise InputError(f"shard {shard['index']}/{count} given twice (also {seen[shard['index']]})",
                             path=folder)
        seen[shard["index"]] = folder
    missing = [i for i in range(count) if i not in seen]
    if missing:
        raise InputError(f"missing shard(s) {', '.join(f'{i}/{count}' for i in missing)} of {count}",
                         path=folders[0])
    parts, ids = [], []
    for i in range(count):
        matrix, row_ids, _ = load_csr(seen[i])
        parts.append(matrix)
        ids.extend(row_ids)
    merged = sp.csr_matrix(sp.vstack(parts, format="csr"))
    meta = {k: v for k, v in first.items() if k not in ("shard", "row_ids")}
    return merged, ids, meta


def _meta(folder: Path) -> dict:
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise InputError("not a sparse-matrix folder (no meta.json); `idfsplade encode DATASET --out FOLDER` "
                         "writes one", path=folder)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable ({type(exc).__name__}): encode again", path=path) from None
    return meta
