"""BM25 with bm25s, the baseline every inference-free result is compared against."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import bm25s
import numpy as np

from idfsplade.atomic import atomic_dir, atomic_write_json
from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits, read_index_meta
from idfsplade.integrity import FILES_KEY, check_finite, check_offsets, check_range, damaged, load_npy, manifest, \
    seal, verify_full, verify_quick, verify_seal
from idfsplade.search.retriever import Run

# bm25s sets its own logger to DEBUG at import; once anything configures the root logger (a library's
# logging.warning() does), every index build would print "DEBUG:bm25s:Building index …" to users.
logging.getLogger("bm25s").setLevel(logging.WARNING)


class BM25Retriever:
    """bm25s (Lucene's BM25 variant, k1=1.2, b=0.75 as Lucene/Elasticsearch default) with English stop
    words, optionally a Snowball stemmer (PyStemmer). SciFact test nDCG@10: 0.6625 plain, 0.6791 stemmed
    (BEIR reports 0.665 for Elasticsearch)."""

    FORMAT = "idfsplade-bm25s-1"

    def __init__(self, doc_ids: list[str], texts: list[str], stemmer: str | None = None,
                 k1: float = 1.2, b: float = 0.75) -> None:
        self._setup(doc_ids, stemmer, k1, b)
        tokens = _sorted_vocabulary(bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False))
        self.model = bm25s.BM25(k1=k1, b=b)
        self.model.index(tokens, show_progress=False)

    def _setup(self, doc_ids: list[str], stemmer: str | None, k1: float, b: float) -> None:
        self.name = "bm25" + (f"-stem-{stemmer}" if stemmer else "")
        self.doc_ids = np.asarray(doc_ids, dtype=object)
        self.stemmer_name, self.k1, self.b = stemmer, k1, b
        self._stemmer = None
        if stemmer:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(stemmer)

    def save(self, folder: str | Path) -> Path:
        """Write the index to ``folder`` atomically: bm25s' own files (``BM25.save``) plus ``meta.json``
        (format, stemmer, k1, b) and ``doc_ids.json``, so an index folder can carry a BM25 side-index."""
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            self.model.save(str(tmp / "bm25s"), show_progress=False)
            atomic_write_json(tmp / "doc_ids.json", self.doc_ids.tolist(), indent=None)
            atomic_write_json(tmp / "meta.json", seal({"format": self.FORMAT, "stemmer": self.stemmer_name,
                                                       "k1": self.k1, "b": self.b, "n_docs": len(self.doc_ids),
                                                       FILES_KEY: manifest(tmp)}))
        return folder

    @staticmethod
    def rebuild_command(folder: Path) -> str:
        """An index folder's side-index is rebuilt with the index; a standalone one by its writer."""
        target = folder.parent if folder.name == "bm25" else folder
        return f"idfsplade index VECTORS --out {target}"

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = True, full_check: bool = False) -> BM25Retriever:
        """The retriever :meth:`save` wrote (score matrix memory-mapped by default). Checked on load: the
        recorded files' sizes, dtypes and shapes (``full_check``: their sha256), and bm25s' term
        offsets and document ids (vectorised, O(postings)), so a damaged file is one line, not a
        bm25s traceback or a wrong hit."""
        folder = Path(folder)
        meta = read_index_meta(folder, cls.FORMAT, "a BM25 index")
        rebuild = cls.rebuild_command(folder)
        files = meta.get(FILES_KEY)
        if isinstance(files, dict):
            (verify_full if full_check else verify_quick)(folder, files, rebuild)
        if full_check:
            verify_seal(meta, folder / "meta.json", rebuild)
        try:
            doc_ids = json.loads((folder / "doc_ids.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise damaged(folder / "doc_ids.json", "missing", rebuild) from None
        except (ValueError, UnicodeDecodeError):
            raise damaged(folder / "doc_ids.json", "unreadable", rebuild) from None
        if not isinstance(doc_ids, list) or len(doc_ids) != meta.get("n_docs"):
            raise InputError(f"{len(doc_ids)} ids for {meta.get('n_docs')} documents", path=folder / "doc_ids.json")
        retriever = cls.__new__(cls)
        retriever._setup(doc_ids, meta.get("stemmer"), float(meta["k1"]), float(meta["b"]))
        store = folder / "bm25s"
        arrays = {name: load_npy(store / f"{name}.csc.index.npy", rebuild) for name in ("data", "indices", "indptr")}
        check_offsets(arrays["indptr"], len(arrays["indices"]), store / "indptr.csc.index.npy", rebuild)
        check_range(arrays["indices"], 0, len(doc_ids), store / "indices.csc.index.npy", rebuild, "document id")
        if full_check:
            check_finite(arrays["data"], store / "data.csc.index.npy", rebuild)
        try:
            retriever.model = bm25s.BM25.load(str(store), mmap=mmap, show_progress=False)
        except Exception as exc:  # noqa: BLE001 - bm25s reads its files without checks: a damaged one
            # raises whatever its parser meets (JSONDecodeError, KeyError, TypeError on a garbled key, ...)
            raise damaged(store, f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})",
                          rebuild) from None
        return retriever

    def _tokenize(self, texts: list[str]):
        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)

    def search(self, text: str, k: int = 10) -> SearchHits:
        return self._search([text], k)[0]

    def _search(self, texts: list[str], k: int) -> list[SearchHits]:
        k = min(k, len(self.doc_ids))
        docs, scores = self.model.retrieve(self._tokenize(texts), k=k, show_progress=False, n_threads=1)
        hits = []
        for row_docs, row_scores in zip(docs, scores):
            keep = row_scores > 0
            hits.append(SearchHits(self.doc_ids[row_docs[keep]].tolist(), row_scores[keep].astype(np.float32)))
        return hits

    def search_many(self, queries: dict[str, str], k: int = 100,
                    progress: Callable[[int], None] | None = None) -> Run:
        qids = list(queries)
        hits = self._search([queries[q] for q in qids], k)
        if progress is not None:
            progress(len(qids))
        return {qid: {d: float(s) for d, s in zip(h.ids, h.scores)} for qid, h in zip(qids, hits)}


def _sorted_vocabulary(tokens: bm25s.tokenization.Tokenized) -> bm25s.tokenization.Tokenized:
    """The same tokens with ids in sorted-token order. bm25s numbers tokens in set order, which
    changes with each process's hash seed, so its saved files (and their checksums in the folder's
    manifest) would differ between two builds of the same index; scores do not depend on the ids."""
    order = sorted(tokens.vocab, key=lambda token: token)
    remap = np.empty(len(order), dtype=np.int64)
    for new_id, token in enumerate(order):
        remap[tokens.vocab[token]] = new_id
    ids = [remap[np.asarray(doc, dtype=np.int64)].tolist() if len(doc) else [] for doc in tokens.ids]
    return bm25s.tokenization.Tokenized(ids=ids, vocab={token: i for i, token in enumerate(order)})
