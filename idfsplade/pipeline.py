"""The steps from a BEIR folder to an evaluated run, composed once for the CLI, the service and the
benchmarks: IDF → document vectors → index → retrievers → metrics.

Every step writes into a work folder and is skipped when its output is already there and was made
from the same inputs, so an interrupted ``idfsplade evaluate`` resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import scipy.sparse as sp
from sentence_transformers import SparseEncoder

from idfsplade.atomic import atomic_write_json
from idfsplade.data import BeirDataset, document_text
from idfsplade.evaluate import ResultRow, evaluate_run, write_trec_run
from idfsplade.evaluate.metrics import check_depth
from idfsplade.fingerprint import file_fingerprint, model_fingerprint, stale_notice
from idfsplade.idf.cache import Progress, corpus_idf, no_progress
from idfsplade.integrity import portable_path, seal
from idfsplade.index import InvertedIndex
from idfsplade.model import DocumentEncoder, load_sparse_encoder, model_query_encoder, resolve_model
from idfsplade.model.inference_free import load_tokenizer
from idfsplade.model.registry import DEFAULT_DOC_MODEL
from idfsplade.search import BM25Retriever, InferenceFreeRetriever, index_folder
from idfsplade.search.hybrid import HybridSpec, fuse_runs, sparse_weights
from idfsplade.search.retriever import Retriever, Run
from idfsplade.vectors import PruneConfig, discard_stale_shards, load_csr, sparsity_stats
from idfsplade.vectors.shards import DEFAULT_CHUNK, shard_range


@dataclass
class SparseModelSpec:
    """Which model to run and where its IDF comes from: ``"corpus"`` (computed on the evaluated
    corpus), ``"model"`` (the model's own query weights / ``idf.json``) or a path to an ``idf.json``."""

    model: str = DEFAULT_DOC_MODEL
    idf: str = "corpus"
    batch_size: int = 32
    max_length: int = 512
    prune: PruneConfig = PruneConfig()
    device: str | None = None
    name: str | None = None  # the row label and work-folder name; default: see ``label``

    @property
    def label(self) -> str:
        """``name``, else the model's last path part — or, for a trained run's ``<run>/model`` folder,
        the run's name, so that two runs' models neither share a label nor a cache folder."""
        if self.name:
            return self.name
        path = Path(self.model)
        return path.parent.name if path.name == "model" and path.parent.name else path.name


def load_model(spec: SparseModelSpec, dataset: BeirDataset, work: Path,
               progress: Progress = no_progress) -> tuple[SparseEncoder, Path | None]:
    """The encoder with the IDF ``spec`` asks for, and the idf.json it came from (None: the model's own)."""
    if spec.idf == "model":
        return load_sparse_encoder(spec.model, device=spec.device), None
    if spec.idf == "corpus":
        # Tokenizer first (cheap), IDF second, then the model built with that IDF.
        table = corpus_idf(dataset, load_tokenizer(spec.model), work / "idf.json", progress)
        return load_sparse_encoder(spec.model, idf=table, device=spec.device), work / "idf.json"
    return load_sparse_encoder(spec.model, idf=spec.idf, device=spec.device), Path(spec.idf)


def vectors_key(spec: SparseModelSpec, dataset: BeirDataset) -> dict:
    """Everything document vectors depend on: model bytes, corpus bytes, truncation, pruning (not the IDF)."""
    return {"model": model_fingerprint(resolve_model(spec.model), resolve_model),
            "corpus": file_fingerprint(dataset.corpus_path)["sha256"],
            "max_length": spec.max_length, "prune": vars(spec.prune)}


def encode_corpus(model: SparseEncoder, dataset: BeirDataset, out: Path, spec: SparseModelSpec,
                  idf_file: Path | None, progress: Progress = no_progress, shard: tuple[int, int] | None = None,
                  chunk: int = DEFAULT_CHUNK) -> tuple[sp.csr_matrix, list[str]]:
    """Encode (or reuse, or resume) the document vectors of the dataset's corpus into ``out``.

    Vectors are reused when :func:`vectors_key` matches (the IDF does not change them): the same model
    weights, corpus bytes, truncation and pruning. Shards of a killed run resume under the same rule.
    The idf file recorded beside them lets ``index``, ``search`` and ``serve`` rebuild the matching
    query encoder without being told again.

    ``shard=(i, n)`` encodes only shard ``i`` of ``n`` (:mod:`idfsplade.vectors.shards`: contiguous,
    chunk-aligned rows) and records it; ``chunk`` is the number of documents per resumable piece.
    """
    key = vectors_key(spec, dataset)
    if chunk != DEFAULT_CHUNK:
        key["chunk"] = chunk
    # paths relative to the vectors folder: no machine path is written (idfsplade.integrity.portable_path)
    provenance = {"model": portable_path(spec.model, out), "max_length": spec.max_length,
                  "prune": vars(spec.prune), "corpus": portable_path(dataset.corpus_path, out)}
    idf_str = portable_path(idf_file, out) if idf_file else None
    n_docs = sum(1 for _ in dataset.iter_corpus())
    extra = {"key": key, "provenance": provenance, "idf_file": idf_str}
    start, stop = 0, n_docs
    if shard is not None:
        start, stop = shard_range(*shard, n_docs, chunk)
        extra["shard"] = {"index": shard[0], "count": shard[1], "start": start, "stop": stop, "chunk": chunk,
                          "corpus_docs": n_docs}
    meta_path = out / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("key") == key and meta.get("shard") == extra.get("shard"):
            if meta.get("idf_file") != idf_str or meta.get("provenance") != provenance:
                atomic_write_json(meta_path, seal({**meta, "idf_file": idf_str, "provenance": provenance}), indent=None)
            matrix, ids, _ = load_csr(out)
            return matrix, ids
        stale_notice("document vectors", out, meta.get("key", {}), key)
    discard_stale_shards(out, {**key, "shard": extra.get("shard")})
    encoder = DocumentEncoder(model, batch_size=spec.batch_size, max_length=spec.max_length, prune=spec.prune)
    docs = ((d.id, document_text(d)) for d in itertools.islice(dataset.iter_corpus(), start, stop))
    return encoder.encode_to_store(docs, out, shard_size=chunk, progress=progress("encode", stop - start),
                                   extra=extra)


# The query-side functions live in the torch-free idfsplade.search.index_folder (search and serve import
# them from there); re-exported for existing callers.
index_info = index_folder.index_info
resolve_source = index_folder.resolve_source
open_index_retriever = index_folder.open_index_retriever


def build_sparse_retriever(spec: SparseModelSpec, dataset: BeirDataset, work: Path, docs_dir: Path | None = None,
                           progress: Progress = no_progress
                           ) -> tuple[InferenceFreeRetriever, sp.csr_matrix]:
    """IDF → encode → index for one dataset; returns the retriever and the document matrix."""
    model, idf_file = load_model(spec, dataset, work, progress)
    docs_dir = docs_dir or work / "docs"
    docs, doc_ids = encode_corpus(model, dataset, docs_dir, spec, idf_file, progress)
    _, _, meta = load_csr(docs_dir)
    index = InvertedIndex.from_csr(docs, doc_ids, info=index_info(meta, docs_dir))
    query_encoder = model_query_encoder(model)
    # With a copy of the query side and the documents, so search and serve need neither the model nor torch.
    index_folder.write_index(index, work / "index", query=query_encoder, corpus=dataset.corpus_path)
    return InferenceFreeRetriever(query_encoder, index, name=spec.label), docs


def run_and_score(retriever: Retriever, dataset: BeirDataset, queries: dict[str, str],
                  qrels: dict[str, dict[str, int]], work: Path, k: int = 100,
                  progress: Progress = no_progress) -> tuple[Run, ResultRow]:
    check_depth(k)
    run = retriever.search_many(queries, k=k, progress=progress(f"search {retriever.name}", len(queries)))
    write_trec_run(work / "runs" / f"{retriever.name}.trec", run, tag=retriever.name)
    return run, ResultRow(dataset.name, retriever.name, evaluate_run(qrels, run))


def evaluate_dataset(dataset: BeirDataset, split: str, work: Path, specs: list[SparseModelSpec],
                     bm25: bool = True, bm25_stemmers: tuple[str | None, ...] = (None,), k: int = 100,
                     progress: Progress = no_progress, hybrid: HybridSpec | None = None) -> list[ResultRow]:
    """BM25 (if ``bm25``: one row per stemmer, ``None`` = no stemming) and each sparse model on one
    dataset split; writes the runs and returns one row each.

    With ``hybrid``, each sparse model's run is also fused with the BM25 run of ``hybrid.lexical``
    (OpenSearch's min-max + weighted mean, or RRF; :mod:`idfsplade.search.hybrid`), both ``k`` deep:
    one more row per model, ``hybrid bm25-stem+<model> idf=… (<method> w=<sparse weight>)``.
    """
    docs = list(dataset.iter_corpus())  # parsed once: ids for the qrels check, texts for BM25
    doc_ids = [d.id for d in docs]
    queries, qrels = dataset.split_queries(split, doc_ids=set(doc_ids))
    rows = []
    lexical_runs: dict[str | None, Run] = {}  # stemmer -> run, for the hybrid rows
    if bm25:
        texts = [document_text(d) for d in docs]
        for stemmer in bm25_stemmers:
            retriever = BM25Retriever(doc_ids, texts, stemmer=stemmer)
            lexical_runs[stemmer], row = run_and_score(retriever, dataset, queries, qrels, work, k, progress)
            rows.append(row)
    if hybrid is not None and hybrid.stemmer not in lexical_runs:
        lexical = BM25Retriever(doc_ids, [document_text(d) for d in docs], stemmer=hybrid.stemmer)
        lexical_runs[hybrid.stemmer] = lexical.search_many(queries, k=k)
    for spec in specs:
        model_work = work / spec_slug(spec)
        # Vectors depend on model and pruning, not on the IDF: runs with other IDFs share them.
        vectors = work / "vectors" / spec_slug(spec, with_idf=False)
        retriever, docs = build_sparse_retriever(spec, dataset, model_work, vectors, progress)
        run, row = run_and_score(retriever, dataset, queries, qrels, model_work, k, progress)
        q_matrix = retriever.query_encoder.to_csr(retriever.query_encoder.encode_batch(list(queries.values())))
        stats = sparsity_stats(q_matrix, docs)
        row.query_active_dims, row.doc_active_dims, row.flops = (stats.query_active_dims, stats.doc_active_dims,
                                                                  stats.flops)
        row.retriever = f"{retriever.name} idf={_idf_label(spec.idf)}"
        rows.append(row)
        if hybrid is not None:
            fused = fuse_runs([lexical_runs[hybrid.stemmer], run], sparse_weights(hybrid.weight, hybrid.method),
                              hybrid.method, hybrid.rank_constant, k)
            name = hybrid.row_name(row.retriever)
            write_trec_run(model_work / "runs" / f"hybrid-{hybrid.lexical}-{hybrid.label.replace(' ', '-')}.trec",
                           fused, tag="hybrid")
            rows.append(ResultRow(dataset.name, name, evaluate_run(qrels, fused)))
    return rows


def _idf_label(idf: str) -> str:
    """'corpus', 'model', or the folder holding the idf.json (e.g. 'scifact')."""
    return idf if idf in ("corpus", "model") else Path(idf).parent.name or Path(idf).stem


def spec_slug(spec: SparseModelSpec, with_idf: bool = True) -> str:
    """The work-folder name of a model spec in ``evaluate_dataset``'s work folder: its label, idf and
    pruning (``with_idf=False``: the shared document-vectors folder, which the IDF does not change)."""
    idf = (spec.idf if spec.idf in ("corpus", "model") else "idf-" + _idf_label(spec.idf)) if with_idf else ""
    prune = "-".join(f"{k}{v}" for k, v in vars(spec.prune).items() if v is not None)
    return "-".join(filter(None, [spec.label, idf, prune]))
