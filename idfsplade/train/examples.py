"""Training data: (query, candidate passages) examples, cached to disk as jsonl.

Two builders, one format:

- :func:`build_supervised` — a BEIR train split: each judged query with one positive and hard
  negatives mined by BM25 (and optionally by a dense model); the fine-tuning data of the paper.
- :func:`build_weak` — an unlabelled corpus (queries and qrels never read): pseudo-queries made from
  each document by a mixture of registered generators (:mod:`idfsplade.train.pseudo_queries`: its
  title, first sentence, a random sentence, a random 6-12-word span, high-IDF terms of a sentence), each paired with the
  document *minus the pseudo-query text*, so the pair is not a trivial exact match for the lexical
  teacher; negatives mined from the corpus by BM25. The data of ``idfsplade adapt``.

An :class:`ExampleSet` is two files: ``passages.jsonl`` (``{"id", "text"}``) and ``examples.jsonl``
(``{"qid", "query", "candidates": [positive, negatives...]}``). Building appends finished chunks
to ``*.partial`` files, so a killed build resumes after its last chunk; the final files are renamed
into place only when complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from idfsplade.atomic import atomic_write_json
from idfsplade.data import BeirDataset, document_text, iter_jsonl
from idfsplade.errors import InputError
from idfsplade.fingerprint import read_key, stale_notice, texts_sha256
from idfsplade.model.registry import DEFAULT_DENSE_MODEL
from idfsplade.train.pseudo_queries import (  # noqa: F401  (remove_text: still importable from here)
    DEFAULT_PSEUDO_QUERIES,
    PSEUDO_QUERY_GENERATORS,
    WordIdf,
    pseudo_queries,
    remove_text,
)


@dataclass(frozen=True)
class Example:
    """One training query; ``candidates[0]`` is the positive, the rest are negatives."""

    qid: str
    query: str
    candidates: list[str]


class ExampleSet:
    """Examples plus the passage texts they point to."""

    def __init__(self, examples: list[Example], passages: dict[str, str]) -> None:
        self.examples = examples
        self.passages = passages

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def queries(self) -> dict[str, str]:
        return {e.qid: e.query for e in self.examples}

    @classmethod
    def load(cls, folder: Path) -> ExampleSet:
        passages = {r["id"]: r["text"] for _, r in iter_jsonl(folder / "passages.jsonl", ("id", "text"))}
        examples = []
        for lineno, r in iter_jsonl(folder / "examples.jsonl", ("qid", "query", "candidates")):
            unknown = [c for c in r["candidates"] if c not in passages]
            if unknown or len(r["candidates"]) < 2:
                raise InputError(f"candidates must be >= 2 known passage ids (unknown: {unknown[:3]})",
                                 path=folder / "examples.jsonl", line=lineno, field="candidates")
            examples.append(Example(str(r["qid"]), r["query"], [str(c) for c in r["candidates"]]))
        return cls(examples, passages)


class _ChunkWriter:
    """Append-only jsonl with a resume point: lines go to ``name.partial``; :meth:`close` renames it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.done_keys: set[str] = set()
        if self.partial.exists():
            lines = self.partial.read_text(encoding="utf-8").splitlines()
            complete = [ln for ln in lines if ln.endswith("}")]  # a kill mid-line leaves a torn last line
            self.partial.write_text("".join(ln + "\n" for ln in complete), encoding="utf-8")
            self.done_keys = {json.loads(ln)["qid"] for ln in complete}

    def write(self, records: list[dict]) -> None:
        with self.partial.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()

    def close(self) -> None:
        self.partial.replace(self.path)


NegativeMiner = Callable[[list[str], int], list[list[str]]]  # (queries, k) -> ranked passage ids each


def bm25_miner(pool: dict[str, str]) -> NegativeMiner:
    """Rank the pool with BM25 (:class:`~idfsplade.search.BM25Retriever`, Snowball-stemmed)."""
    from idfsplade.search import BM25Retriever

    retriever = BM25Retriever(list(pool), list(pool.values()), stemmer="english")

    def mine(queries: list[str], k: int) -> list[list[str]]:
        run = retriever.search_many({str(i): q for i, q in enumerate(queries)}, k=k)
        return [list(run[str(i)]) for i in range(len(queries))]

    return mine


def dense_miner(pool: dict[str, str], model: str = DEFAULT_DENSE_MODEL) -> NegativeMiner:
    """Rank the pool with a sentence-transformers bi-encoder (exact cosine search)."""
    from idfsplade.train.teachers import DenseTeacher

    teacher = DenseTeacher(model)
    ids = list(pool)
    passages = teacher.encode_passages(list(pool.values()))

    def mine(queries: list[str], k: int) -> list[list[str]]:
        scores = teacher.encode_queries(queries) @ passages.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[ids[j] for j in row] for row in top]

    return mine


def _interleave(rankings: list[list[str]], exclude: set[str], n: int) -> list[str]:
    """Round-robin over the miners' rankings, skipping positives and repeats, until ``n`` ids."""
    picked: list[str] = []
    for rank in range(max((len(r) for r in rankings), default=0)):
        for ranking in rankings:
            if rank < len(ranking) and ranking[rank] not in exclude and ranking[rank] not in picked:
                picked.append(ranking[rank])
                if len(picked) == n:
                    return picked
    return picked


def _build(folder: Path, pairs: list[tuple[str, str, list[str]]], pool: dict[str, str],
           miners: list[NegativeMiner], n_negatives: int, provenance: dict, seed: int,
           chunk: int = 256, exclude: dict[str, set[str]] | None = None,
           negative_ids: list[str] | None = None) -> ExampleSet:
    """Mine negatives for ``(qid, query, positives)`` pairs in chunks; resumable; returns the set.

    ``exclude``: per query id, more passage ids that must not be negatives (a pseudo-query's source
    document); ``negative_ids``: the ids random padding draws from (default: the whole pool).
    """
    meta = folder / "meta.json"
    # Keyed by content, not only by settings: the queries, their positives and every pool text (a
    # corpus or qrels edited in place, or a changed pseudo-query rule, rebuilds; see fingerprint.py).
    content = texts_sha256({f"q:{qid}": "\0".join([query, *pos]) for qid, query, pos in pairs} | pool)
    provenance = {**provenance, "passages": "pool", "content": content}
    saved = read_key(meta)
    if saved == provenance:
        return ExampleSet.load(folder)
    stale_notice("training examples", folder, saved, provenance)
    folder.mkdir(parents=True, exist_ok=True)
    building = folder / "building.json"  # what the chunks of a killed build were made from
    if read_key(building) != provenance:
        (folder / "examples.jsonl.partial").unlink(missing_ok=True)
        atomic_write_json(building, provenance)
    writer = _ChunkWriter(folder / "examples.jsonl")
    rng = np.random.default_rng(seed)
    todo = [p for p in pairs if p[0] not in writer.done_keys]
    depth = n_negatives * 3 + 10
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        rankings = [miner([q for _, q, _ in part], depth) for miner in miners]
        records = []
        for i, (qid, query, positives) in enumerate(part):
            banned = set(positives) | (exclude or {}).get(qid, set())
            negatives = _interleave([r[i] for r in rankings], banned, n_negatives)
            if len(negatives) < n_negatives:  # short rankings: pad with random pool passages
                others = [p for p in rng.permutation(negative_ids or list(pool)) if p not in banned
                          and p not in negatives]
                negatives += others[:n_negatives - len(negatives)]
            positive = positives[int(rng.integers(len(positives)))]
            records.append({"qid": qid, "query": query, "candidates": [positive, *negatives]})
        writer.write(records)
    # The whole pool, not only the mined candidates: teachers then encode the full corpus once,
    # and the same cache serves their full-corpus evaluation (and BM25's term statistics).
    passages_tmp = folder / "passages.jsonl.partial"
    passages_tmp.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n"
                                    for i, t in pool.items()), encoding="utf-8")
    passages_tmp.replace(folder / "passages.jsonl")
    writer.close()
    atomic_write_json(meta, provenance)
    return ExampleSet.load(folder)


def build_supervised(dataset: BeirDataset, split: str, folder: Path, n_negatives: int = 7,
                     miners: tuple[str, ...] = ("bm25",), dense_model: str = DEFAULT_DENSE_MODEL,
                     seed: int = 42) -> ExampleSet:
    """Examples from the judged queries of ``split``: one positive (relevance > 0) and mined negatives."""
    pool = {d.id: document_text(d) for d in dataset.iter_corpus()}
    queries, qrels = dataset.split_queries(split, doc_ids=set(pool))
    pairs = [(qid, queries[qid], sorted(d for d, rel in judged.items() if rel > 0))
             for qid, judged in qrels.items()]
    pairs = [p for p in pairs if p[2]]
    provenance = {"kind": "supervised", "dataset": str(dataset.path), "split": split,
                  "negatives": n_negatives, "miners": list(miners), "seed": seed}
    return _build(folder, pairs, pool, _miners(miners, pool, dense_model), n_negatives, provenance, seed)


def build_weak(dataset: BeirDataset, folder: Path, n_negatives: int = 7, miners: tuple[str, ...] = ("bm25",),
               dense_model: str = DEFAULT_DENSE_MODEL, max_pairs: int | None = None, seed: int = 42,
               generators: tuple[str, ...] | list[str] = DEFAULT_PSEUDO_QUERIES, per_doc: int = 1) -> ExampleSet:
    """Examples from an unlabelled corpus: only ``corpus.jsonl`` is read (never queries or qrels).

    Documents are visited in a seeded random order; each gives up to ``per_doc`` pseudo-queries
    (:func:`pseudo_queries`), until ``max_pairs``. The positive of pseudo-query ``pq-<generator>-<doc>``
    is the passage ``<doc>#pq-<generator>`` (the document without the pseudo-query text); negatives are
    mined by ``miners`` over the corpus documents, never the source document. The pool holds every
    corpus document unchanged plus those positives, so teachers also score the corpus as it is.

    The generators are rules, not a model: doc2query / InPars-style generation needs a seq2seq model
    this project does not ship offline (sentence-transformers has none built in); the cropping and
    inverse-cloze rules are those of Contriever (Izacard et al. 2022) and ICT (Lee et al. 2019).
    """
    unknown = [g for g in generators if g not in PSEUDO_QUERY_GENERATORS]
    if unknown or not generators:
        raise InputError(f"pseudo-query generators must be among {list(PSEUDO_QUERY_GENERATORS)}, got "
                         f"{list(generators)}", field="pseudo_queries")
    docs = list(dataset.iter_corpus())
    corpus = {d.id: document_text(d) for d in docs}
    idf = WordIdf(corpus.values()) if "terms" in generators else None
    rng = np.random.default_rng(seed)
    passages: dict[str, str] = {}
    pairs, exclude = [], {}
    for i in rng.permutation(len(docs)).tolist():
        doc = docs[i]
        for name, query, passage in pseudo_queries(doc, generators, rng, idf, per_doc):
            pid, qid = f"{doc.id}#pq-{name}", f"pq-{name}-{doc.id}"
            if pid in corpus:
                raise InputError(f"document id {pid!r} collides with a pseudo-query passage id",
                                 path=dataset.corpus_path, field="_id")
            passages[pid] = passage
            pairs.append((qid, query, [pid]))
            exclude[qid] = {doc.id}
        if max_pairs is not None and len(pairs) >= max_pairs:
            pairs = pairs[:max_pairs]
            break
    if not pairs:
        raise InputError(f"no document yields a pseudo-query with generators {list(generators)}",
                         path=dataset.corpus_path)
    kept = {pid for _, _, (pid,) in pairs}
    pool = {**corpus, **{pid: t for pid, t in passages.items() if pid in kept}}
    provenance = {"kind": "weak", "version": 2, "dataset": str(dataset.path), "negatives": n_negatives,
                  "miners": list(miners), "max_pairs": max_pairs, "seed": seed,
                  "pseudo_queries": list(generators), "per_doc": per_doc}
    return _build(folder, pairs, pool, _miners(miners, corpus, dense_model), n_negatives, provenance, seed,
                  exclude=exclude, negative_ids=list(corpus))


def _miners(names: tuple[str, ...] | list[str], pool: dict[str, str], dense_model: str) -> list[NegativeMiner]:
    factories = {"bm25": lambda: bm25_miner(pool), "dense": lambda: dense_miner(pool, dense_model)}
    unknown = [n for n in names if n not in factories]
    if unknown or not names:
        raise InputError(f"negative miners must be among {sorted(factories)}, got {list(names)}", field="miners")
    return [factories[n]() for n in names]
