"""Pruning on SciFact: nDCG@10 against index size and search latency.

Index-time pruning of the document vectors (``prune_rows``: ``top_k``, ``max_ratio``, absolute
``threshold``) and query-time pruning (``QueryEncoder(prune_ratio=...)``), each on its own, on the
SPLADE-tiny vectors of SciFact with the corpus IDF. For every setting: postings and on-disk size of
the exact index, nDCG@10 on the test queries, and the median / p99 search latency (query vectors
encoded beforehand, so only the index's work is timed; all settings interleaved query by query in
the same run). Prints a Markdown table and writes JSON.

Needs the encoded corpus: ``idfsplade encode datasets/scifact -m splade-tiny --out runs/scifact-docs`` (writes the
IDF to ``runs/scifact-docs.idf/idf.json``). Usage: ``python benchmarks/pruning.py [--docs DIR]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from idfsplade.atomic import atomic_write_json
from idfsplade.data import BeirDataset
from idfsplade.evaluate import evaluate_run
from idfsplade.index import InvertedIndex
from idfsplade.model import QueryEncoder, SparseQuery
from idfsplade.vectors import PruneConfig, prune_rows

from search_latency import time_interleaved  # noqa: E402  (benchmarks/, the script's folder, is on sys.path)

REPO = Path(__file__).resolve().parents[1]

DOC_PRUNING = [PruneConfig(top_k=k) for k in (128, 64, 32, 16)] + \
              [PruneConfig(max_ratio=r) for r in (0.1, 0.2, 0.3, 0.5)] + \
              [PruneConfig(threshold=t) for t in (0.25, 0.5, 1.0)]
QUERY_PRUNING = [0.1, 0.2, 0.3, 0.5]


@dataclass
class Setting:
    name: str
    kind: str  # "none", "doc" or "query"
    postings: int
    index_mb: float
    ndcg10: float
    recall100: float
    median_us: float = 0.0
    p99_us: float = 0.0
    latency_ratio: float = 1.0  # median / unpruned median, same run


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir()) / 2**20


def label(config: PruneConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in vars(config).items() if v is not None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=REPO / "runs" / "scifact-docs",
                        help="CSR store of the encoded corpus (IDF in <docs>.idf/idf.json)")
    parser.add_argument("--dataset", type=Path, default=REPO / "datasets" / "scifact")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "pruning.json")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from idfsplade.idf import IdfTable
    from idfsplade.model import resolve_model
    from idfsplade.vectors import load_csr

    docs, doc_ids, _ = load_csr(args.docs, mmap=False)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("splade-tiny"))
    idf = IdfTable.load(args.docs.parent / f"{args.docs.name}.idf" / "idf.json", tokenizer)
    dataset = BeirDataset(args.dataset)
    queries, qrels = dataset.split_queries("test", doc_ids=set(doc_ids))
    qids, texts = list(queries), list(queries.values())

    def encode(ratio: float | None) -> list[SparseQuery]:
        return QueryEncoder(tokenizer, idf.weights, prune_ratio=ratio).encode_batch(texts)

    # (name, kind, index, encoded queries) for every setting; indexes saved once to measure size.
    runs: list[tuple[str, str, InvertedIndex, list[SparseQuery]]] = []
    full_queries = encode(None)
    full_index = InvertedIndex.from_csr(docs, doc_ids)
    runs.append(("no pruning", "none", full_index, full_queries))
    for config in DOC_PRUNING:
        runs.append((f"doc {label(config)}", "doc", InvertedIndex.from_csr(prune_rows(docs, config), doc_ids),
                     full_queries))
    for ratio in QUERY_PRUNING:
        runs.append((f"query prune_ratio={ratio}", "query", full_index, encode(ratio)))

    settings = []
    with tempfile.TemporaryDirectory(prefix="idfsplade-pruning-") as tmp:
        for i, (name, kind, index, encoded) in enumerate(runs):
            folder = Path(tmp) / str(i)
            index.save(folder)
            run = {}
            for qid, q in zip(qids, encoded):
                hits = index.search(q.ids, q.weights, 100)
                run[qid] = {d: float(s) for d, s in zip(hits.ids, hits.scores)}
            metrics = evaluate_run(qrels, run)
            settings.append(Setting(name, kind, index.nnz, folder_mb(folder), metrics["nDCG@10"],
                                    metrics["Recall@100"]))
            print(f"{name}: nDCG@10 {metrics['nDCG@10']:.4f}, {index.nnz} postings", file=sys.stderr)

    t0 = time.perf_counter()
    fns = {name: (lambda q, ix=index, enc=encoded: ix.search(enc[q].ids, enc[q].weights, 10))
           for name, _, index, encoded in runs}
    latency = time_interleaved(fns, len(texts), args.repeats)
    base = float(np.median(latency["no pruning"]))
    for s in settings:
        s.median_us = float(np.median(latency[s.name]))
        s.p99_us = float(np.percentile(latency[s.name], 99))
        s.latency_ratio = s.median_us / base
    print(f"timed in {time.perf_counter() - t0:.0f}s", file=sys.stderr)

    lines = ["| setting | postings | index MB | nDCG@10 | Recall@100 | median µs | p99 µs | latency vs none |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in settings:
        lines.append(f"| {s.name} | {s.postings:,} | {s.index_mb:.1f} | {s.ndcg10:.4f} | {s.recall100:.4f} | "
                     f"{s.median_us:.0f} | {s.p99_us:.0f} | {s.latency_ratio:.2f}x |")
    print("\n".join(lines))
    atomic_write_json(args.out, {"docs": str(args.docs), "n_docs": len(doc_ids), "n_queries": len(texts),
                                 "k_latency": 10, "k_run": 100, "repeats": args.repeats,
                                 "settings": [asdict(s) for s in settings]})
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
