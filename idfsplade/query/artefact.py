"""The query side on disk: ``tokenizer.json`` + ``idf.json``, the pair OpenSearch's ``SPARSE_TOKENIZE``
model holds, read with the ``tokenizers`` library and numpy only (no torch, no transformers).

- ``tokenizer.json`` is the fast tokenizer with truncation set to the query's max length and no
  padding (as ``idfsplade export opensearch`` writes it: DJL reads the limit from the file too);
- ``idf.json`` is ``{token: weight}``; a vocabulary token absent from it weighs
  :data:`~idfsplade.idf.MISSING_TOKEN_IDF` (1.0) and special tokens weigh 0, as everywhere in idfsplade.

Where the pair is found: an index folder written by ``idfsplade index`` / ``evaluate`` holds a copy;
an ``idfsplade export opensearch`` folder holds it inside ``sparse_tokenize.zip``; any folder with the
two files works.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from idfsplade.atomic import atomic_save_npy, atomic_write_text
from idfsplade.errors import InputError
from idfsplade.idf.idf import decode_idf_json, weights_from_table
from idfsplade.query.encoder import QueryEncoder, special_ids

TOKENIZER_FILE = "tokenizer.json"
IDF_FILE = "idf.json"
WEIGHTS_FILE = "idf.weights.npy"  # + idf.weights.json: the weights parsed from idf.json, and its sha256
TOKENIZE_ZIP = "sparse_tokenize.zip"  # idfsplade.export.opensearch.TOKENIZE_ZIP (that module imports torch)


@dataclass(frozen=True)
class Artefact:
    """A file the query side was loaded from: a name to report (never a server path) and its sha256."""

    name: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


@dataclass(frozen=True)
class QuerySide:
    """A loaded query encoder and what it was loaded from."""

    encoder: QueryEncoder
    tokenizer: Artefact
    idf: Artefact


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_tokenizer(data: bytes, source: str | Path) -> Tokenizer:
    try:
        return Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - the Rust error type is not exported
        raise InputError(f"not a tokenizers tokenizer.json ({str(exc).splitlines()[0][:120]})", path=source) from None


def parse_idf(data: bytes, tokenizer: Tokenizer, source: str | Path):
    """Weights (float32, vocabulary-sized) from ``idf.json`` bytes; errors name the file and line."""
    return weights_from_table(decode_idf_json(data, source), tokenizer.get_vocab_size(with_added_tokens=True),
                              tokenizer.token_to_id, special_ids(tokenizer), source)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("expected a file, got a folder", path=path) from None


def load_query_side(tokenizer_data: bytes, idf_data: bytes, tokenizer_source: str | Path, idf_source: str | Path,
                    prune_ratio: float | None = None, idf_name: str = IDF_FILE, weights_cache: Path | None = None
                    ) -> QuerySide:
    tokenizer = parse_tokenizer(tokenizer_data, tokenizer_source)
    weights = _cached_weights(weights_cache, sha256_bytes(idf_data), tokenizer) if weights_cache else None
    if weights is None:
        weights = parse_idf(idf_data, tokenizer, idf_source)
    encoder = QueryEncoder(tokenizer, weights, prune_ratio=prune_ratio, copy=False)
    return QuerySide(encoder, Artefact(TOKENIZER_FILE, sha256_bytes(tokenizer_data)),
                     Artefact(idf_name, sha256_bytes(idf_data)))


def _cached_weights(cache: Path, idf_sha256: str, tokenizer: Tokenizer):
    """The weights :func:`save_query_side` cached as ``.npy`` beside ``idf.json``, if they were derived from
    these very idf.json bytes (else None: the JSON is parsed). Saves ~0.1 s of `idfsplade search`'s start."""
    try:
        source = json.loads(cache.with_suffix(".json").read_text(encoding="utf-8"))
        if source.get("idf_sha256") != idf_sha256:
            return None
        weights = np.load(cache)
    except (OSError, ValueError):
        return None
    if weights.dtype != np.float32 or weights.shape != (tokenizer.get_vocab_size(with_added_tokens=True),):
        return None
    return weights


def has_query_side(folder: Path) -> bool:
    """Whether ``folder`` holds the pair, as files or as an exported ``sparse_tokenize.zip``."""
    folder = Path(folder)
    if folder.is_file():
        return zipfile.is_zipfile(folder)
    return ((folder / TOKENIZER_FILE).is_file() and (folder / IDF_FILE).is_file()) or (folder / TOKENIZE_ZIP).is_file()


def load_from_folder(folder: str | Path, idf: str | Path | None = None, prune_ratio: float | None = None
                     ) -> QuerySide:
    """The query side held by ``folder`` (two files, or ``sparse_tokenize.zip``, or that zip itself);
    ``idf`` (an ``idf.json`` path) replaces the weights it holds."""
    folder = Path(folder)
    zip_path = folder if folder.is_file() else folder / TOKENIZE_ZIP
    if zip_path.is_file() and not (folder.is_dir() and (folder / TOKENIZER_FILE).is_file()):
        try:
            with zipfile.ZipFile(zip_path) as archive:
                tokenizer_data = archive.read(TOKENIZER_FILE)
                idf_data = archive.read(IDF_FILE) if idf is None else None
        except (zipfile.BadZipFile, KeyError) as exc:
            raise InputError(f"not a SPARSE_TOKENIZE zip with {TOKENIZER_FILE} and {IDF_FILE} ({exc})",
                             path=zip_path) from None
        tokenizer_source, idf_source = f"{zip_path}:{TOKENIZER_FILE}", f"{zip_path}:{IDF_FILE}"
    else:
        tokenizer_data = _read(folder / TOKENIZER_FILE)
        idf_data = _read(folder / IDF_FILE) if idf is None else None
        tokenizer_source, idf_source = folder / TOKENIZER_FILE, folder / IDF_FILE
    cache = folder / WEIGHTS_FILE if idf is None and folder.is_dir() and (folder / WEIGHTS_FILE).is_file() else None
    if idf is not None:
        idf_data, idf_source = _read(Path(idf)), Path(idf)
    return load_query_side(tokenizer_data, idf_data, tokenizer_source, idf_source, prune_ratio,
                           idf_name=Path(idf).name if idf is not None else IDF_FILE, weights_cache=cache)


def save_query_side(encoder: QueryEncoder, folder: str | Path) -> dict[str, dict[str, str]]:
    """Write ``tokenizer.json`` + ``idf.json`` of ``encoder`` into ``folder`` (each atomically);
    returns ``{"tokenizer": {name, sha256}, "idf": {...}}`` for the index's meta.json."""
    folder = Path(folder)
    tokenizer_text = encoder.tokenizer.to_str()
    idf_text = json.dumps(encoder.idf_table(), ensure_ascii=False) + "\n"  # IdfTable.save's bytes
    atomic_write_text(folder / TOKENIZER_FILE, tokenizer_text)
    atomic_write_text(folder / IDF_FILE, idf_text)
    # idf.json stays the source of truth; the array read from it is cached, keyed by its sha256
    weights = parse_idf(idf_text.encode(), encoder.tokenizer, folder / IDF_FILE)
    atomic_save_npy(folder / WEIGHTS_FILE, weights)
    atomic_write_text((folder / WEIGHTS_FILE).with_suffix(".json"),
                      json.dumps({"idf_sha256": sha256_bytes(idf_text.encode())}) + "\n")
    return {"tokenizer": Artefact(TOKENIZER_FILE, sha256_bytes(tokenizer_text.encode())).as_dict(),
            "idf": Artefact(IDF_FILE, sha256_bytes(idf_text.encode())).as_dict()}
