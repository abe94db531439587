"""An index folder with what it takes to search it: the inverted index, the query side it was built
for (``tokenizer.json`` + ``idf.json``) and, optionally, a document store.

Written by ``idfsplade index`` and ``evaluate`` (:func:`write_index`), opened by ``idfsplade search``
and the service (:func:`open_index_retriever`). Opening needs no torch, transformers or
sentence-transformers: the query side is a ``tokenizers`` tokenizer and an idf array.

With the documents comes a BM25 side-index (``bm25/``: bm25s, Snowball English stemmer, the lexical
side of the hybrid default), so ``search --hybrid`` and ``serve --hybrid`` fuse BM25 with the learned
sparse run without a model either (:func:`open_hybrid`, :mod:`idfsplade.search.hybrid`).

Older index folders hold no query side; they still open, by loading the model their ``meta.json``
records (which imports torch), or the ``--model`` given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from idfsplade.data.store import DocumentStore, write_document_store
from idfsplade.errors import InputError, notice
from idfsplade.index.exact import InvertedIndex
from idfsplade.integrity import resolve_recorded
from idfsplade.query.artefact import (
    IDF_FILE,
    TOKENIZER_FILE,
    Artefact,
    QuerySide,
    has_query_side,
    load_from_folder,
    save_query_side,
    sha256_bytes,
)
from idfsplade.query.encoder import QueryEncoder
from idfsplade.search.retriever import InferenceFreeRetriever

BM25_DIR = "bm25"
# The side-index's analyzer: the lexical side of the hybrid default (HybridSpec.lexical == "bm25-stem").
BM25_STEMMER = "english"


@dataclass(frozen=True)
class QuerySource:
    """What an index is searched with, as the service reports it: names and checksums, no paths."""

    model: str
    tokenizer: Artefact
    idf: Artefact
    torch_free: bool  # the query side came from tokenizer.json + idf.json (no model loaded)


def describe_source(encoder: QueryEncoder, model: str, idf_name: str = IDF_FILE, torch_free: bool = True
                    ) -> QuerySource:
    """A :class:`QuerySource` for an encoder built in memory: checksums of the ``tokenizer.json`` and
    ``idf.json`` that :func:`~idfsplade.query.artefact.save_query_side` would write for it."""
    import json

    idf_bytes = (json.dumps(encoder.idf_table(), ensure_ascii=False) + "\n").encode()
    return QuerySource(model_label(model), Artefact(TOKENIZER_FILE, sha256_bytes(encoder.tokenizer.to_str().encode())),
                       Artefact(idf_name, sha256_bytes(idf_bytes)), torch_free)


def index_info(meta: dict, folder: str | Path | None = None) -> dict:
    """Where the vectors in ``folder`` came from (the ``provenance`` and ``idf_file`` that
    :func:`idfsplade.pipeline.encode_corpus` writes into their meta.json), with the paths recorded
    relative to the folder resolved, ready to use (model, corpus, idf). :func:`write_index` records
    them in the index by name and checksum only (:func:`portable_info`)."""
    info = {**meta.get("provenance", {}), "idf_file": meta.get("idf_file")}
    if folder is not None:
        for key in ("model", "corpus", "idf_file"):
            if isinstance(info.get(key), str):
                info[key] = resolve_recorded(info[key], folder)
    return info


def portable_info(info: dict) -> dict:
    """``info`` as an index folder records it: no machine path. The model by its label
    (:func:`model_label`), the corpus by its file name, the idf file by name and sha256 (the folder's
    own ``idf.json`` is what queries are weighted with)."""
    info = dict(info)
    if isinstance(info.get("model"), str):
        info["model"] = model_label(info["model"])
    if isinstance(info.get("corpus"), str):
        info["corpus"] = Path(info["corpus"]).name
    idf = info.get("idf_file")
    if isinstance(idf, str) and idf != "model":
        path = Path(idf)
        info["idf_file"] = {"name": path.name, **({"sha256": sha256_bytes(path.read_bytes())} if path.is_file() else {})}
    return info


def check_query_side_present(index_dir: Path, info: dict) -> None:
    """An index folder written with a copy of the query side must still hold it: a missing
    ``tokenizer.json`` or ``idf.json`` is an error naming the file, never a fall-back to a model or an
    idf file outside the folder."""
    recorded = info.get("query")
    if not isinstance(recorded, dict):
        return
    for entry in recorded.values():
        name = entry.get("name") if isinstance(entry, dict) else None
        if name and not (Path(index_dir) / name).is_file():
            raise InputError("missing; the folder is damaged: rebuild it with "
                             f"`idfsplade index VECTORS --out {index_dir}`", path=Path(index_dir) / name)


def model_label(model: str) -> str:
    """A model's name without a server path: an alias or hub id as given; for a local folder its name,
    or for a trained run's ``<run>/model`` folder the run's name."""
    from idfsplade.model.registry import PACKAGED_MODELS, resolve_model  # torch-free

    path = Path(model)
    if not path.is_absolute() and not model.startswith(".") and not path.exists():
        return model  # alias or hub id
    for alias in PACKAGED_MODELS:
        try:
            if Path(resolve_model(alias)).resolve() == path.resolve():
                return alias
        except InputError:  # that package is not installed
            continue
    if path.name == "model" and path.parent.name:
        return path.parent.name
    return path.name or model


def resolve_source(index_dir: Path, info: dict, model: str | None, idf: str | None) -> tuple[str, str | None]:
    """``(model, idf.json path)`` to query the index with; ``None`` means the model's own weights.

    Defaults come from the provenance the index records (``model``, and ``idf_file``: the idf.json the
    documents were encoded with, absent or null for the model's own), so queries are weighted exactly
    as at build time. Without a recorded model there is nothing safe to guess (another tokenizer would
    silently return nonsense): an error.
    """
    model = model or info.get("model")
    if not model:
        raise InputError("the index records no model (index.info); pass --model", path=index_dir)
    recorded = info.get("idf_file")
    if isinstance(recorded, dict):  # recorded by name and checksum (portable_info): the folder's own copy
        own = Path(index_dir) / IDF_FILE
        if not idf and not own.is_file():
            raise InputError(f"missing (the idf the documents were encoded with, {recorded.get('name')}); "
                             f"pass --idf, or rebuild the index", path=own)
        recorded = str(own)
    idf = idf or recorded or "model"
    if idf == "model":
        return model, None
    if not Path(idf).exists():
        raise InputError("idf file not found; pass --idf", path=idf)
    return model, idf


def query_encoder_from_model(model: str, idf_path: str | None, prune_ratio: float | None = None) -> QueryEncoder:
    """The query side read out of a model (loads it with torch, on the CPU): for indexes without a copy."""
    from idfsplade.model.inference_free import load_sparse_encoder, model_query_encoder

    return model_query_encoder(load_sparse_encoder(model, idf=idf_path, device="cpu"), prune_ratio=prune_ratio)


def _is_query_side_folder(model: str) -> bool:
    """A ``--model`` that is itself a query side: an ``idfsplade export opensearch`` folder (or its
    ``sparse_tokenize.zip``), or any folder with ``tokenizer.json`` + ``idf.json`` and no model weights."""
    path = Path(model)
    if not path.exists():
        return False
    if path.is_file():
        return has_query_side(path)
    weights = any((path / name).exists() for name in ("modules.json", "config.json"))
    return has_query_side(path) and not weights


def _legacy_source(index_dir: Path, info: dict, model: str | None, idf: str | None,
                   prune_ratio: float | None) -> tuple[QueryEncoder, QuerySource]:
    model, idf_path = resolve_source(index_dir, info, model, idf)
    encoder = query_encoder_from_model(model, idf_path, prune_ratio)
    source = describe_source(encoder, model, "model", torch_free=False)
    if idf_path is not None:  # the checksum of the file given, which `sha256sum` can check
        source = replace(source, idf=Artefact(Path(idf_path).name, sha256_bytes(Path(idf_path).read_bytes())))
    return encoder, source


def open_query_side(index_dir: Path, info: dict, model: str | None = None, idf: str | None = None,
                    prune_ratio: float | None = None) -> tuple[QueryEncoder, QuerySource]:
    """The query encoder for an index folder, and what it came from.

    - no ``model``: the index's own copy (``tokenizer.json`` + ``idf.json``); ``idf`` (a path) replaces
      its weights. An index without a copy falls back to loading its recorded model (torch).
    - ``model`` an exported or query-side folder (or ``sparse_tokenize.zip``): read from there.
    - any other ``model`` (alias, hub id, model folder, trained run), or ``idf="model"``: the model is
      loaded to read its query route (torch).
    """
    recorded = info.get("model") or "unknown"
    if model is None:
        check_query_side_present(index_dir, info)
    if idf != "model":
        if model is None and has_query_side(index_dir):
            side = load_from_folder(index_dir, idf=idf, prune_ratio=prune_ratio)
            return side.encoder, _source(side, recorded)
        if model is not None and _is_query_side_folder(model):
            side = load_from_folder(model, idf=idf, prune_ratio=prune_ratio)
            return side.encoder, _source(side, model)
    if model is None:
        notice(f"{index_dir} holds no query side ({TOKENIZER_FILE} + {IDF_FILE}); loading the model "
               f"to read it (rebuild the index with `idfsplade index` to search without torch)")
    return _legacy_source(index_dir, info, model, idf, prune_ratio)


def _source(side: QuerySide, model: str) -> QuerySource:
    return QuerySource(model_label(model), side.tokenizer, side.idf, torch_free=True)


def open_index_retriever(index_dir: str | Path, model: str | None = None, idf: str | None = None,
                         prune_ratio: float | None = None) -> tuple[InferenceFreeRetriever, QuerySource]:
    """The index (memory-mapped) with the query side it was built for: ``(retriever, source)``.

    Shared by ``idfsplade search`` and the HTTP service, so both answer a query identically.
    """
    from idfsplade.index.folder import open_index  # whichever backend the folder records

    index_dir = Path(index_dir)
    index = open_index(index_dir)
    encoder, source = open_query_side(index_dir, index.info, model, idf, prune_ratio)
    if encoder.vocab_size != index.vocab_size:
        raise InputError(f"the index has a {index.vocab_size}-term vocabulary but model '{source.model}' has "
                         f"{encoder.vocab_size}; pass the --model it was built with", path=index_dir)
    return InferenceFreeRetriever(encoder, index), source


def open_documents(index_dir: str | Path) -> DocumentStore | None:
    """The index's document store, or None when it was built without one."""
    return DocumentStore.open(index_dir)


def open_hybrid(index_dir: str | Path, sparse: InferenceFreeRetriever, weight: float | None = None,
                method: str | None = None):
    """A :class:`~idfsplade.search.hybrid.HybridRetriever` fusing the index folder's BM25 side-index with
    ``sparse`` (the folder's learned sparse retriever). ``weight`` (the sparse side's) and ``method``
    default to the tuned ones; RRF's default is unweighted, as OpenSearch's."""
    from idfsplade.search.hybrid import HybridRetriever, resolve_settings

    weight, method = resolve_settings(weight, method)
    return HybridRetriever(open_lexical(index_dir), sparse, weight=weight, method=method)


def open_lexical(index_dir: str | Path):
    """The index folder's BM25 side-index (:class:`~idfsplade.search.bm25.BM25Retriever`, memory-mapped)."""
    folder = Path(index_dir) / BM25_DIR
    if not (folder / "meta.json").is_file():
        raise InputError("the index holds no BM25 side-index, which hybrid search needs: rebuild it with "
                         "`idfsplade index` (it is written with the documents; pass --corpus if the vectors' "
                         "corpus has moved)", path=index_dir)
    from idfsplade.search.bm25 import BM25Retriever  # bm25s: only for hybrid search

    return BM25Retriever.load(folder)


def _write_bm25(folder: Path) -> dict:
    """BM25 over the documents just stored in ``folder``, in index-row order, written to ``folder/bm25``:
    the same analyzer and text (title + text) as ``evaluate``'s stemmed BM25 row."""
    from idfsplade.data import document_text
    from idfsplade.search.bm25 import BM25Retriever

    store = DocumentStore(folder)
    docs = [store.get(row) for row in range(len(store))]
    lexical = BM25Retriever([d.id for d in docs], [document_text(d) for d in docs], stemmer=BM25_STEMMER)
    lexical.save(folder / BM25_DIR)
    return {"bm25": {"folder": BM25_DIR, "stemmer": BM25_STEMMER, "k1": lexical.k1, "b": lexical.b}}


def _attacher(doc_ids: list[str], query: QueryEncoder | None, corpus: str | Path | None, bm25: bool):
    def attach(folder: Path) -> dict:
        extra: dict = {}
        if query is not None:
            extra["query"] = save_query_side(query, folder)
        if corpus is not None:
            extra.update(write_document_store(folder, corpus, doc_ids))
            if bm25:
                extra.update(_write_bm25(folder))
        return extra

    return attach


def write_index(index: InvertedIndex, out: str | Path, query: QueryEncoder | None = None,
                corpus: str | Path | None = None, bm25: bool = True) -> None:
    """Save ``index`` to ``out`` atomically, with a copy of the query side, and from ``corpus`` when
    given a document store and (``bm25``) a BM25 side-index for hybrid search: all of it appears at
    once, or nothing does."""
    index.info = portable_info(index.info)
    index.save(out, _attacher(index.doc_ids, query, corpus, bm25))


def write_backend_index(backend: str, options: dict, docs, doc_ids: list[str], info: dict, out: str | Path,
                        query: QueryEncoder | None = None, corpus: str | Path | None = None,
                        bm25: bool = True) -> None:
    """As :func:`write_index`, for a non-exact ``backend`` (:mod:`idfsplade.index.folder`) built with ``options``."""
    from idfsplade.index.folder import build_index_folder

    build_index_folder(backend, docs, doc_ids, out, portable_info(info), options, _attacher(doc_ids, query, corpus, bm25))
