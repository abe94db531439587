"""Search latency: the exact index against scipy's CSC column slice, other backends, end-to-end retrievers.

Sections (each a list of rows in one table and one JSON file):

1. ``synthetic``: 100k random documents (~110 non-zeros, Zipf-skewed terms over a 30,522-token
   vocabulary), 1,000 ten-term queries weighted by the corpus IDF. ``InvertedIndex.search`` against
   the baseline ``csc[:, term_ids] @ weights`` + ``argpartition`` top-k, measured in the same run,
   interleaved query by query and repeated. Goal: median ≤ 0.7x the baseline.
2. ``backends``: the same data through the other backends of ``idfsplade.index.registry`` (Seismic,
   Milvus, Lucene; those whose extra is installed), with their recall of the exact top-k.
3. ``scifact`` (``--scifact``): end-to-end on real SciFact test queries: inference-free (tokenize +
   IDF, then search) on the exact index and on each other available backend, BM25 (bm25s, and
   Lucene through Pyserini when it and Java 21 are installed) and the siamese path (the query through
   SPLADE-tiny's MLM), with ratios to BM25 (bm25s) from the same run.
4. ``synthetic-1m`` (``--synthetic-1m``): 1M documents drawn from the real encoded SciFact statistics
   (non-zeros per document, term frequencies, per-term weights), queried with SciFact's test queries.

Usage: ``python benchmarks/search_latency.py [--no-synthetic] [--backends NAMES] [--scifact]
[--no-lucene-bm25] [--synthetic-1m] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import scipy
import scipy.sparse as sp

from idfsplade.atomic import atomic_write_json
from idfsplade.index import InvertedIndex

REPO = Path(__file__).resolve().parents[1]
Query = tuple[np.ndarray, np.ndarray]  # (term ids, weights)
SearchFn = Callable[[int], object]  # query number -> result


# ---------------------------------------------------------------- data


def zipf_term_probabilities(vocab: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """p(term) ∝ rank^-exponent, ranks assigned to token ids at random."""
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -exponent
    out = np.empty(vocab)
    out[rng.permutation(vocab)] = p / p.sum()
    return out


def draws_for_distinct(p: np.ndarray, distinct: float) -> float:
    """How many draws with replacement from ``p`` give ``distinct`` distinct terms on average."""
    lo, hi = distinct, distinct * 50
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 - (1 - p) ** mid).sum() < distinct else (lo, mid)
    return hi


def sample_rows(p: np.ndarray, n_draws: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """A binary CSR matrix: row r holds the distinct terms of ``n_draws[r]`` draws from ``p``."""
    vocab = len(p)
    rows = np.repeat(np.arange(len(n_draws), dtype=np.int64), n_draws)
    uniform = np.sort(rng.random(len(rows)))  # sorted needles: searchsorted stays in cache
    terms = rng.permutation(np.searchsorted(np.cumsum(p), uniform).clip(0, vocab - 1))
    keys = rows * vocab + terms
    keys.sort()
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    rows, terms = np.divmod(keys, vocab)
    indptr = np.zeros(len(n_draws) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(n_draws)), out=indptr[1:])
    return sp.csr_matrix((np.ones(len(keys), np.float32), terms.astype(np.int32), indptr),
                         shape=(len(n_draws), vocab))


def bm25_idf(docs: sp.csr_matrix) -> np.ndarray:
    """The IDF an inference-free model would use on this corpus (same formula as ``idfsplade.idf``)."""
    df = np.bincount(docs.indices, minlength=docs.shape[1]).astype(np.float64)
    n = docs.shape[0]
    return np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)


def synthetic_corpus(n_docs: int = 100_000, vocab: int = 30_522, nnz: float = 110, exponent: float = 1.0,
                     seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """Random SPLADE-like documents and the term distribution they were drawn from."""
    rng = np.random.default_rng(seed)
    p = zipf_term_probabilities(vocab, exponent, rng)
    docs = sample_rows(p, rng.poisson(draws_for_distinct(p, nnz), n_docs), rng)
    docs.data = rng.uniform(0.05, 3.0, docs.nnz).astype(np.float32)  # log1p(relu(logit)) range
    return docs, p


def synthetic_queries(p: np.ndarray, idf: np.ndarray, n_queries: int = 1000, n_terms: int = 10,
                      seed: int = 1) -> list[Query]:
    """Ten distinct terms per query, drawn from the documents' Zipf distribution, weighted by IDF."""
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(n_queries):
        ids = np.sort(rng.choice(len(p), n_terms, replace=False, p=p)).astype(np.int32)
        queries.append((ids, idf[ids]))
    return queries


def corpus_like(reference: sp.csr_matrix, n_docs: int, seed: int = 0, chunk: int = 100_000) -> sp.csr_matrix:
    """``n_docs`` random documents with the reference's statistics: each term in a document with the
    term's document frequency in the reference, non-zeros per document following its histogram, each
    weight copied from a random posting of the same term.

    Terms are drawn with replacement at Poisson rate ``-ln(1 - df/N)`` per document, which puts a
    term in a document with probability ``df/N`` after duplicates collapse.
    """
    rng = np.random.default_rng(seed)
    csc = sp.csc_matrix(reference)
    n_ref = reference.shape[0]
    df = np.diff(csc.indptr)
    rate = -np.log1p(-np.minimum(df / n_ref, 1 - 0.5 / n_ref))
    nnz_ref = np.diff(sp.csr_matrix(reference).indptr)
    draws_per_term = rate.sum() / nnz_ref.mean()
    parts = []
    for start in range(0, n_docs, chunk):
        target = rng.choice(nnz_ref, min(chunk, n_docs - start))
        block = sample_rows(rate / rate.sum(), np.round(target * draws_per_term).astype(np.int64), rng)
        pick = csc.indptr[block.indices] + (rng.random(block.nnz) * df[block.indices]).astype(np.int64)
        block.data = csc.data[pick].astype(np.float32)
        parts.append(block)
    return sp.vstack(parts, format="csr")


def corpus_topical(reference: sp.csr_matrix, n_docs: int, seed: int = 0, keep: float = 0.7, jitter: float = 0.25,
                   chunk: int = 100_000) -> sp.csr_matrix:
    """``n_docs`` documents that keep the reference's topics: each one is a real document, mutated.

    ``corpus_like`` draws every term independently, so its documents share no topics (the cosine of
    a document to its nearest neighbour is ~0.20 where real encoded collections give ~0.5, see
    ``nearest_cosine``) and clustering indexes such as Seismic cannot form tight blocks. Here a
    document starts from a random reference document: each of its terms is kept with probability
    ``keep``; the rest of its length comes from a *partner*, a random document holding one of the
    base's terms (chosen in proportion to its weight), each of whose terms is added with the
    probability that replaces the dropped ones on average; every weight is the source weight times
    ``exp(N(0, jitter))``, and a term in both keeps the larger. A bigger corpus is then the same
    topics with more documents each, as real collections grow.
    """
    rng = np.random.default_rng(seed)
    reference = sp.csr_matrix(reference, dtype=np.float32)
    reference.sort_indices()
    csc = sp.csc_matrix(reference)
    df = np.diff(csc.indptr)
    nnz = np.diff(reference.indptr)
    cum = np.concatenate(([0.0], np.cumsum(reference.data, dtype=np.float64)))
    before, row_sum = cum[reference.indptr[:-1]], cum[reference.indptr[1:]] - cum[reference.indptr[:-1]]
    nonempty = np.flatnonzero(nnz)

    def mutated(rows: np.ndarray, keep_p: np.ndarray) -> sp.csr_matrix:
        part = reference[rows]
        per_posting = np.repeat(keep_p, np.diff(part.indptr))
        part.data *= (rng.random(part.nnz) < per_posting) * np.exp(rng.normal(0, jitter, part.nnz)).astype(np.float32)
        return part

    parts = []
    for start in range(0, n_docs, chunk):
        n = min(chunk, n_docs - start)
        base = rng.choice(nonempty, n)
        position = np.searchsorted(cum, before[base] + rng.random(n) * row_sum[base], side="right") - 1
        term = reference.indices[np.clip(position, reference.indptr[base], reference.indptr[base + 1] - 1)]
        partner = csc.indices[csc.indptr[term] + (rng.random(n) * df[term]).astype(np.int64)]
        refill = np.minimum(1.0, (1 - keep) * nnz[base] / np.maximum(nnz[partner], 1))
        block = mutated(base, np.full(n, keep)).maximum(mutated(partner, refill)).tocsr()
        block.eliminate_zeros()
        block.sort_indices()
        parts.append(block.astype(np.float32))
    return sp.vstack(parts, format="csr")


def nearest_cosine(docs: sp.csr_matrix, n_sample: int = 300, seed: int = 1) -> np.ndarray:
    """For ``n_sample`` random documents, the cosine to their nearest other document (exact)."""
    rng = np.random.default_rng(seed)
    docs = sp.csr_matrix(docs, dtype=np.float32)
    norms = np.sqrt(np.asarray(docs.multiply(docs).sum(axis=1)).ravel())
    unit = sp.diags(1 / np.where(norms > 0, norms, 1)) @ docs
    rows = rng.choice(docs.shape[0], min(n_sample, docs.shape[0]), replace=False)
    similarity = (unit @ unit[rows].T).toarray()
    similarity[rows, np.arange(len(rows))] = -1  # not itself
    return similarity.max(axis=0)


# ---------------------------------------------------------------- timing


@dataclass
class Row:
    section: str
    name: str
    median_us: float
    p99_us: float
    qps: float
    baseline: str = ""
    ratio: float | None = None  # median / baseline median, same run
    extra: dict = field(default_factory=dict)


def time_interleaved(fns: dict[str, SearchFn], n_queries: int, repeats: int, seed: int = 0
                     ) -> dict[str, np.ndarray]:
    """Per-query latencies (µs, median over repeats) of each function.

    Each repeat visits the queries in a fresh random order, and for each query runs every function
    back to back in a random order, so machine noise (2 shared cores, swings up to 1.8x) hits all of
    them alike.
    """
    rng = np.random.default_rng(seed)
    names = list(fns)
    times = {name: np.empty((repeats, n_queries)) for name in names}
    for name in names:  # warm-up: caches, lazy statistics, thread buffers
        for q in range(min(n_queries, 20)):
            fns[name](q)
    clock = time.perf_counter_ns
    for r in range(repeats):
        for q in rng.permutation(n_queries):
            for name in rng.permutation(names):
                fn = fns[name]
                t0 = clock()
                fn(q)
                times[name][r, q] = (clock() - t0) / 1e3
    return {name: np.median(t, axis=0) for name, t in times.items()}


def summarise(section: str, latencies: dict[str, np.ndarray], baseline: str, extra: dict | None = None
              ) -> list[Row]:
    base = float(np.median(latencies[baseline]))
    rows = []
    for name, lat in latencies.items():
        median = float(np.median(lat))
        rows.append(Row(section, name, median, float(np.percentile(lat, 99)), 1e6 / float(np.mean(lat)),
                        baseline, median / base, dict(extra or {})))
    return rows


class CscBaseline:
    """The plain scipy search the exact index must beat: column slice, mat-vec, argpartition."""

    def __init__(self, docs: sp.csr_matrix) -> None:
        self.csc = sp.csc_matrix(docs, dtype=np.float32)
        self._terms_by_docs: sp.csr_matrix | None = None  # built on first batch

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> np.ndarray:
        scores = self.csc[:, term_ids] @ weights
        top = np.argpartition(-scores, k - 1)[:k]
        return top[np.argsort(-scores[top], kind="stable")]

    def search_batch(self, queries: Sequence[Query], k: int = 10) -> list[np.ndarray]:
        """All queries in one sparse (queries × vocabulary) @ (vocabulary × documents) product."""
        if self._terms_by_docs is None:
            self._terms_by_docs = sp.csr_matrix(self.csc.T)
        indptr = np.concatenate(([0], np.cumsum([len(ids) for ids, _ in queries])))
        q = sp.csr_matrix((np.concatenate([w for _, w in queries]), np.concatenate([ids for ids, _ in queries]),
                           indptr), shape=(len(queries), self.csc.shape[1]))
        scores = sp.csr_matrix(q @ self._terms_by_docs)
        out = []
        for r in range(len(queries)):
            span = slice(scores.indptr[r], scores.indptr[r + 1])
            docs, vals = scores.indices[span], scores.data[span]
            top = np.argpartition(-vals, k - 1)[:k] if len(vals) > k else np.arange(len(vals))
            out.append(docs[top[np.argsort(-vals[top], kind="stable")]])
        return out


def check_same_top(index: InvertedIndex, baseline: CscBaseline, queries: Sequence[Query], k: int) -> int:
    """Queries whose top-k score lists differ between the index and the baseline (should be 0)."""
    bad = 0
    for ids, w in queries[:200]:
        hits = index.search(ids, w, k)
        full = (baseline.csc[:, ids] @ w).astype(np.float32)
        ref = np.sort(full[full > 0])[::-1][:k]
        bad += not np.allclose(hits.scores, ref, rtol=1e-5)
    return bad


def index_vs_baseline(section: str, docs: sp.csr_matrix, queries: list[Query], k: int, repeats: int,
                      extra: dict) -> list[Row]:
    index = InvertedIndex.from_csr(docs, [str(i) for i in range(docs.shape[0])])
    baseline = CscBaseline(docs)
    mismatches = check_same_top(index, baseline, queries, k)
    if mismatches:
        raise SystemExit(f"{section}: exact index disagrees with scipy on {mismatches} queries")
    fns = {"scipy-csc (baseline)": lambda q: baseline.search(*queries[q], k),
           "exact InvertedIndex": lambda q: index.search(*queries[q], k)}
    lat = time_interleaved(fns, len(queries), repeats)
    postings = [int(np.diff(baseline.csc.indptr)[ids].sum()) for ids, _ in queries]
    extra = dict(extra, postings_per_query_median=float(np.median(postings)))
    rows = summarise(section, lat, "scipy-csc (baseline)", extra)
    # Batches of 100: search_batch against one scipy sparse mat-mat for the whole batch (the batched
    # form of the baseline), reported per query; p99 is over batches.
    size = 100
    batches = [queries[i:i + size] for i in range(0, len(queries) - size + 1, size)]
    fns = {f"exact search_batch({size}) per query": lambda b: index.search_batch(batches[b], k),
           f"scipy mat-mat batch({size}) per query": lambda b: baseline.search_batch(batches[b], k)}
    per_query = {name: t / size for name, t in time_interleaved(fns, len(batches), repeats).items()}
    rows += summarise(section, per_query, f"scipy mat-mat batch({size}) per query", extra)
    return rows


# ---------------------------------------------------------------- sections


def section_synthetic(args: argparse.Namespace) -> tuple[list[Row], sp.csr_matrix, list[Query]]:
    t0 = time.perf_counter()
    docs, p = synthetic_corpus(args.n_docs, seed=args.seed)
    queries = synthetic_queries(p, bm25_idf(docs), args.n_queries, seed=args.seed + 1)
    print(f"synthetic: {docs.shape[0]} docs, {docs.nnz / docs.shape[0]:.1f} nnz/doc, "
          f"built in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    extra = {"n_docs": docs.shape[0], "nnz_per_doc": docs.nnz / docs.shape[0], "n_queries": len(queries)}
    rows = index_vs_baseline(f"synthetic-{docs.shape[0] // 1000}k", docs, queries, args.k, args.repeats, extra)
    return rows, docs, queries


def section_backends(docs: sp.csr_matrix, queries: list[Query], args: argparse.Namespace) -> list[Row]:
    """The other backends of ``idfsplade.index.registry`` on the synthetic data, against the exact
    index in the same run, with their recall@k of the exact top-k (Seismic is approximate)."""
    from idfsplade.index.registry import available_backends, build_backend

    names = [n for n in (args.backends.split(",") if args.backends else available_backends()) if n != "exact"]
    if not names:
        return []
    doc_ids = [str(i) for i in range(docs.shape[0])]
    queries = queries[: args.n_backend_queries]
    exact = InvertedIndex.from_csr(docs, doc_ids)
    truth = [set(exact.search(ids, w, args.k).ids) for ids, w in queries]
    indexes, recall, build_s = {"exact InvertedIndex": exact}, {}, {}
    with tempfile.TemporaryDirectory(prefix="idfsplade-bench-") as tmp:
        for name in names:
            t0 = time.perf_counter()
            try:
                index = build_backend(name, docs, doc_ids, Path(tmp) / name)
            except Exception as exc:  # noqa: BLE001 - a backend that cannot start is reported, not fatal
                print(f"backends: {name} skipped ({exc})", file=sys.stderr)
                continue
            build_s[name] = time.perf_counter() - t0
            found = [set(index.search(ids, w, args.k).ids) for ids, w in queries]
            recall[name] = float(np.mean([len(f & t) / max(len(t), 1) for f, t in zip(found, truth)]))
            indexes[name] = index
        fns = {name: (lambda q, ix=ix: ix.search(*queries[q], args.k)) for name, ix in indexes.items()}
        lat = time_interleaved(fns, len(queries), max(1, args.repeats // 2))
        rows = summarise(f"backends-{docs.shape[0] // 1000}k", lat, "exact InvertedIndex", {"n_queries": len(queries)})
    for row in rows:
        row.extra.update({f"recall@{args.k}_vs_exact": recall.get(row.name, 1.0),
                          "build_s": build_s.get(row.name)})
    return rows


def load_scifact(args: argparse.Namespace):
    """The encoded SciFact store, its model (with the corpus IDF next to the store) and test queries."""
    from transformers import AutoTokenizer

    from idfsplade.data import BeirDataset
    from idfsplade.idf import IdfTable
    from idfsplade.model import load_sparse_encoder, resolve_model
    from idfsplade.vectors import load_csr

    docs, doc_ids, _ = load_csr(args.scifact_docs, mmap=False)
    idf_path = args.scifact_docs.parent / f"{args.scifact_docs.name}.idf" / "idf.json"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("splade-tiny"))
    model = load_sparse_encoder("splade-tiny", idf=IdfTable.load(idf_path, tokenizer), device="cpu")
    dataset = BeirDataset(args.dataset)
    queries, _ = dataset.split_queries("test", doc_ids=set(doc_ids))
    return docs, doc_ids, model, dataset, list(queries.values())


class LuceneBM25:
    """BM25 on a Lucene index of the corpus text, searched with Pyserini's ``LuceneSearcher`` (its
    defaults: Porter stemming, English stop words, k1 = 0.9, b = 0.4).

    Indexing runs Anserini's ``IndexCollection`` (``JsonCollection``) from Pyserini's fat jar in a
    ``java`` subprocess, and search starts the JVM first, both as ``idfsplade.index.lucene`` does.
    """

    def __init__(self, docs, folder: Path) -> None:
        import json
        import subprocess

        from idfsplade.data import document_text
        from idfsplade.index import lucene

        lucene.require()
        collection = folder / "collection"
        collection.mkdir(parents=True)
        with (collection / "docs.jsonl").open("w", encoding="utf-8") as out:
            for doc in docs:
                out.write(json.dumps({"id": doc.id, "contents": document_text(doc)}, ensure_ascii=False) + "\n")
        command = [str(lucene.java_home() / "bin" / "java"), "-cp", str(lucene.anserini_jar()),
                   "io.anserini.index.IndexCollection", "-collection", "JsonCollection",
                   "-input", str(collection), "-index", str(folder / "lucene"),
                   "-generator", "DefaultLuceneDocumentGenerator", "-threads", "1"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            raise RuntimeError(f"Anserini indexing failed (exit {done.returncode}):\n{tail}")
        lucene._start_jvm()  # Java 21 + the Anserini jar, before Pyserini sets up its own JVM
        from pyserini.search.lucene import LuceneSearcher

        self.searcher = LuceneSearcher(str(folder / "lucene"))

    def search(self, query: str, k: int = 10):
        return self.searcher.search(query, k=k)


def scifact_backends(docs: sp.csr_matrix, doc_ids: list[str], args: argparse.Namespace, folder: Path
                     ) -> tuple[dict, dict]:
    """The registry backends other than exact (``--backends``; all available by default) built on the
    SciFact vectors, and their build seconds; a backend that cannot start is skipped."""
    from idfsplade.index.registry import available_backends, build_backend

    names = [n for n in (args.backends.split(",") if args.backends else
                         [] if args.backends == "" else available_backends()) if n and n != "exact"]
    indexes, build_s = {}, {}
    for name in names:
        t0 = time.perf_counter()
        try:
            indexes[name] = build_backend(name, docs, doc_ids, folder / name)
        except Exception as exc:  # noqa: BLE001 - a backend that cannot start is reported, not fatal
            print(f"scifact: backend {name} skipped ({exc})", file=sys.stderr)
            continue
        build_s[name] = time.perf_counter() - t0
    return indexes, build_s


def section_scifact(args: argparse.Namespace) -> list[Row]:
    import torch

    from idfsplade.data import document_text
    from idfsplade.model import DocumentEncoder, model_query_encoder
    from idfsplade.search import BM25Retriever

    torch.set_num_threads(1)  # one query at a time, as a service thread would run it
    docs, doc_ids, model, dataset, texts = load_scifact(args)
    index = InvertedIndex.from_csr(docs, doc_ids)
    query_encoder = model_query_encoder(model)
    siamese = DocumentEncoder(model, batch_size=1)
    bm25 = BM25Retriever(doc_ids, [document_text(d) for d in dataset.iter_corpus()])

    def inference_free(q: int):
        sq = query_encoder.encode(texts[q])
        return index.search(sq.ids, sq.weights, args.k)

    def siamese_search(q: int):
        row = siamese.encode([texts[q]])
        return index.search(row.indices, row.data, args.k)

    fns = {"bm25 (bm25s)": lambda q: bm25.search(texts[q], args.k),
           "inference-free (idf query)": inference_free,
           "siamese (MLM query encoder)": siamese_search}
    with tempfile.TemporaryDirectory(prefix="idfsplade-bench-") as tmp:
        backends, build_s = scifact_backends(docs, doc_ids, args, Path(tmp))
        for name, backend in backends.items():
            def backend_search(q: int, backend=backend):
                sq = query_encoder.encode(texts[q])
                return backend.search(sq.ids, sq.weights, args.k)

            fns[f"inference-free + {name}"] = backend_search
            build_s[f"inference-free + {name}"] = build_s.pop(name)
        if args.lucene_bm25:
            t0 = time.perf_counter()
            try:
                lucene_bm25 = LuceneBM25(dataset.iter_corpus(), Path(tmp) / "lucene-bm25")
            except Exception as exc:  # noqa: BLE001 - no Pyserini or Java 21: the row is left out
                print(f"scifact: bm25 (lucene) skipped ({exc})", file=sys.stderr)
            else:
                build_s["bm25 (lucene)"] = time.perf_counter() - t0
                fns["bm25 (lucene)"] = lambda q: lucene_bm25.search(texts[q], args.k)
        lat = time_interleaved(fns, len(texts), args.repeats_e2e)
    extra = {"n_docs": len(doc_ids), "nnz_per_doc": docs.nnz / len(doc_ids), "n_queries": len(texts)}
    rows = summarise("scifact-e2e", lat, "bm25 (bm25s)", extra)
    for row in rows:
        if row.name in build_s:
            row.extra["build_s"] = build_s[row.name]
    encoded = [(q.ids, q.weights) for q in query_encoder.encode_batch(texts) if len(q.ids)]
    rows += index_vs_baseline("scifact-index", docs, encoded, args.k, args.repeats, extra)
    enc = {"query encode only: idf": lambda q: query_encoder.encode(texts[q]),
           "query encode only: MLM": lambda q: siamese.encode([texts[q]])}
    rows += summarise("scifact-e2e", time_interleaved(enc, len(texts), args.repeats_e2e),
                      "query encode only: idf", extra)
    return rows


def section_synthetic_1m(args: argparse.Namespace) -> list[Row]:
    from idfsplade.model import model_query_encoder

    reference, _, model, _, texts = load_scifact(args)
    t0 = time.perf_counter()
    docs = corpus_like(reference, args.n_docs_1m, seed=args.seed)
    print(f"synthetic-1m: {docs.shape[0]} docs, {docs.nnz / docs.shape[0]:.1f} nnz/doc "
          f"(SciFact {reference.nnz / reference.shape[0]:.1f}), built in {time.perf_counter() - t0:.0f}s",
          file=sys.stderr)
    idf = bm25_idf(docs)
    encoded = model_query_encoder(model).encode_batch(texts)
    queries = [(q.ids, idf[q.ids]) for q in encoded if len(q.ids)]
    extra = {"n_docs": docs.shape[0], "nnz_per_doc": docs.nnz / docs.shape[0], "n_queries": len(queries),
             "queries": "SciFact test, IDF of the synthetic corpus"}
    return index_vs_baseline(f"scifact-like-{docs.shape[0] // 1000}k", docs, queries, args.k,
                             max(1, args.repeats // 2), extra)


# ---------------------------------------------------------------- output


def render(rows: list[Row]) -> str:
    header = f"{'section':<16} {'name':<34} {'median µs':>10} {'p99 µs':>10} {'QPS':>9} {'ratio':>7}  baseline"
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.3f}"
        lines.append(f"{r.section:<16} {r.name:<34} {r.median_us:>10.1f} {r.p99_us:>10.1f} {r.qps:>9.0f} "
                     f"{ratio:>7}  {r.baseline}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "search_latency.json")
    parser.add_argument("--n-docs", type=int, default=100_000)
    parser.add_argument("--n-queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the queries (synthetic)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=True,
                        help="the 100k synthetic section and, on its data, the backends section")
    parser.add_argument("--backends", default=None,
                        help="comma-separated registry backends to compare (default: all available; '' for none)")
    parser.add_argument("--n-backend-queries", type=int, default=300)
    parser.add_argument("--scifact", action="store_true", help="add the end-to-end SciFact section")
    parser.add_argument("--synthetic-1m", action="store_true", help="add a 1M-doc corpus shaped like SciFact")
    parser.add_argument("--n-docs-1m", type=int, default=1_000_000)
    parser.add_argument("--scifact-docs", type=Path, default=REPO / "runs" / "scifact-docs",
                        help="CSR store from `idfsplade encode datasets/scifact --out ...` (IDF next to it)")
    parser.add_argument("--dataset", type=Path, default=REPO / "datasets" / "scifact", help="SciFact BEIR folder")
    parser.add_argument("--repeats-e2e", type=int, default=3)
    parser.add_argument("--lucene-bm25", action=argparse.BooleanOptionalAction, default=True,
                        help="in --scifact, also BM25 on a Lucene index through Pyserini (if installed)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    if args.synthetic:
        rows, docs, queries = section_synthetic(args)
        if args.backends != "":
            rows += section_backends(docs, queries, args)
        del docs
    if args.scifact:
        rows += section_scifact(args)
    if args.synthetic_1m:
        rows += section_synthetic_1m(args)
    print(render(rows))
    atomic_write_json(args.out, {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                             "numpy": np.__version__, "scipy": scipy.__version__},
                                 "args": {k: str(v) for k, v in vars(args).items()},
                                 "rows": [asdict(r) for r in rows]})
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
