"""Content fingerprints for the caches: a cache is reused only when the bytes it was made from match.

Every cached artefact (corpus IDF, document vectors, training examples, teacher vectors) records a
*key*: the settings that change its output plus the sha256 of the files it was computed from (the
corpus, the model's weights and tokenizer). On reuse the key is recomputed and compared; a mismatch
recomputes and says so in one line. Paths and modification times are recorded for the reader but
never compared: a moved or re-cloned folder with the same bytes keeps its caches, a model retrained
into the same folder or a corpus edited in place does not.

Hashing streams the files (SciFact's corpus: ~20 ms; a 90 MB model: ~0.3 s) and is memoised per
process by ``(path, size, mtime_ns)``, so asking twice costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from idfsplade.errors import notice

_CHUNK = 1 << 20
_memo: dict[tuple[str, int, int], str] = {}

# Files of a model folder that do not change its outputs: training leftovers, docs and provenance
# (a model card, checksums, the configs that trained it). Neither transformers nor sentence-transformers
# reads them, and editing a card must not re-encode every corpus.
_IGNORED_MODEL_PARTS = {"checkpoints", ".gitattributes", "SHA256SUMS", "checksums.json", "training_data.json",
                        "training.json"}
_IGNORED_MODEL_SUFFIXES = {".md", ".yaml", ".yml"}  # README.md, MODEL_CARD.md, training configs


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime_ns)."""
    path = Path(path)
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _memo:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
        _memo[memo_key] = digest.hexdigest()
    return _memo[memo_key]


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """``{"sha256", "size"}`` of one file (a corpus, an idf.json)."""
    path = Path(path)
    return {"sha256": file_sha256(path), "size": path.stat().st_size}


def model_fingerprint(name_or_path: str, resolve: Callable[[str], str] | None = None) -> str:
    """sha256 over a local model folder's files (weights, config, tokenizer, sub-modules), or the
    name itself for a hub id (hub snapshots are immutable per revision; no download happens here).

    A composite model's parts that live in other folders (``SparseSum``'s ``parts[].source``) are folded in,
    each name mapped to its folder by ``resolve`` (the model registry's ``resolve_model``; this module
    stays below the model code)."""
    folder = Path(name_or_path)
    if not folder.exists():
        return f"hub:{name_or_path}"
    if folder.is_file():
        return file_sha256(folder)
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = file.relative_to(folder)
        if _IGNORED_MODEL_PARTS.intersection(relative.parts) or file.suffix in _IGNORED_MODEL_SUFFIXES:
            continue
        digest.update(f"{relative.as_posix()}\0{file_sha256(file)}\n".encode())
        if file.name == "config.json":
            for source in _composite_sources(file):  # a composite reads its parts from other folders
                folder_ = resolve(source) if resolve is not None else source
                digest.update(f"part\0{source}\0{model_fingerprint(folder_, resolve)}\n".encode())
    return digest.hexdigest()


def _composite_sources(config: Path) -> list[str]:
    """The part folders a composite model's ``SparseSum`` config names outside its own folder."""
    try:
        parts = json.loads(config.read_text(encoding="utf-8")).get("parts")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(parts, list):
        return []
    sources = []
    for part in parts:
        source = part.get("source") if isinstance(part, dict) else None
        if isinstance(source, str) and (Path(source).is_absolute() or not (config.parent / source).is_dir()):
            sources.append(source)
    return sources


def texts_sha256(items: dict[str, str]) -> str:
    """sha256 of ``{id: text}`` in order: the key of caches built from in-memory texts."""
    digest = hashlib.sha256()
    for key, text in items.items():
        digest.update(key.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def short(digest: str, n: int = 12) -> str:
    """The first ``n`` hex digits, for folder names."""
    return digest.removeprefix("hub:")[:n]


def read_key(path: Path) -> dict | None:
    """The key recorded at ``path`` (a JSON file), or None when absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stale_notice(what: str, where: str | Path, saved: dict | None, key: dict) -> None:
    """Say in one line (stderr) why a cache is not reused; silent when there was no cache."""
    if saved is None:
        return
    changed = sorted(k for k in set(saved) | set(key) if saved.get(k) != key.get(k)) or ["format"]
    notice(f"{what} in {where} were made from other inputs ({', '.join(changed)} changed); recomputing")
