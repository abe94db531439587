"""Choose the hybrid defaults (fusion method and sparse-side weight) on SciFact **train** queries.

Runs stemmed BM25 and the untrained SPLADE-tiny used inference-free with the corpus IDF once each on
the 809 judged train queries (``qrels/train.tsv``; the test split is never read), caches both runs as
JSON under ``runs/hybrid-tuning/<dataset>-<split>/`` (exact scores: a rerun only fuses), then scores a
grid: OpenSearch min-max + weighted arithmetic mean with the sparse weight 0.1 … 0.9, and RRF (k=60,
unweighted). Prints a Markdown table and writes ``benchmarks/results/hybrid_tuning.json``; the best
nDCG@10 row is what ``idfsplade.search.hybrid.DEFAULT_METHOD`` / ``DEFAULT_WEIGHT`` are set to.

Usage: ``python benchmarks/hybrid_tuning.py [--dataset datasets/scifact] [--split train] [--threads 2]``.
Encoding SciFact with SPLADE-tiny takes ~4-5 minutes on 2 cores the first time; the document vectors
are cached where ``idfsplade evaluate`` keeps them (``runs/<dataset>/vectors/splade-tiny``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from idfsplade.atomic import atomic_write_json
from idfsplade.data import BeirDataset, document_text
from idfsplade.evaluate import evaluate_run
from idfsplade.integrity import portable_path
from idfsplade.search import BM25Retriever
from idfsplade.search.hybrid import MIN_MAX, RRF, RRF_RANK_CONSTANT, fuse_runs, sparse_weights

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = [round(0.1 * i, 1) for i in range(1, 10)]
DEPTH = 100  # candidates per part, as HybridRetriever's DEFAULT_DEPTH


def cached_run(path: Path, compute) -> tuple[dict, float]:
    """``(run, seconds)``: the run cached at ``path`` (JSON, exact floats), else computed and cached."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8")), 0.0
    start = time.perf_counter()
    run = compute()
    atomic_write_json(path, run, indent=None)
    return run, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=REPO / "datasets" / "scifact")
    parser.add_argument("--split", default="train", help="never 'test': the defaults must not see it")
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "hybrid-tuning")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "hybrid_tuning.json")
    args = parser.parse_args(argv)
    if args.split == "test":
        parser.error("tune on a training split; the test split is for reporting only")

    import torch

    from idfsplade.pipeline import SparseModelSpec, build_sparse_retriever

    torch.set_num_threads(args.threads)
    dataset = BeirDataset(args.dataset)
    docs = list(dataset.iter_corpus())
    queries, qrels = dataset.split_queries(args.split, doc_ids={d.id for d in docs})
    cache = args.runs / f"{dataset.name}-{args.split}"

    def bm25_run():
        retriever = BM25Retriever([d.id for d in docs], [document_text(d) for d in docs], stemmer="english")
        return retriever.search_many(queries, k=DEPTH)

    def sparse_run():
        spec = SparseModelSpec(model=args.model, idf="corpus")
        vectors = REPO / "runs" / dataset.name / "vectors" / spec.label  # shared with `idfsplade evaluate`
        retriever, _ = build_sparse_retriever(spec, dataset, cache / f"{spec.label}-corpus", vectors)
        return retriever.search_many(queries, k=DEPTH)

    lexical, lexical_s = cached_run(cache / "bm25-stem.json", bm25_run)
    sparse, sparse_s = cached_run(cache / f"{Path(args.model).name}-corpus.json", sparse_run)

    grid = [("bm25-stem alone", None, None, lexical), (f"{Path(args.model).name} alone", None, None, sparse)]
    for w in WEIGHTS:
        grid.append((f"min_max w={w:g}", MIN_MAX, w,
                     fuse_runs([lexical, sparse], sparse_weights(w, MIN_MAX), MIN_MAX, k=DEPTH)))
    grid.append((f"rrf k={RRF_RANK_CONSTANT}", RRF, None, fuse_runs([lexical, sparse], None, RRF, k=DEPTH)))
    rows = []
    for name, method, weight, run in grid:
        rows.append({"setting": name, "method": method, "sparse_weight": weight,
                     **{m: round(v, 4) for m, v in evaluate_run(qrels, run).items()}})
    fused = [r for r in rows if r["method"] is not None]
    best = max(fused, key=lambda r: (r["nDCG@10"], r["Recall@100"]))

    print(f"{dataset.name} {args.split}: {len(queries)} queries, {len(docs)} documents, depth {DEPTH} per part\n")
    print("| setting | nDCG@10 | Recall@100 | MRR@10 |\n|---|---|---|---|")
    for r in rows:
        mark = "**" if r is best else ""
        print(f"| {mark}{r['setting']}{mark} | {r['nDCG@10']:.4f} | {r['Recall@100']:.4f} | {r['MRR@10']:.4f} |")
    print(f"\nbest: {best['setting']} (nDCG@10 {best['nDCG@10']:.4f})")
    atomic_write_json(args.out, {
        "dataset": portable_path(args.dataset, REPO),
        "split": args.split, "queries": len(queries), "documents": len(docs), "depth_per_part": DEPTH,
        "lexical": "bm25s, Snowball English stemmer, English stop words (k1 1.2, b 0.75)",
        "sparse": f"{args.model}, inference-free, corpus IDF, untrained",
        "chosen": {"method": best["method"], "sparse_weight": best["sparse_weight"], "setting": best["setting"]},
        "rows": rows, "seconds": {"bm25-stem run": round(lexical_s, 1), "sparse run": round(sparse_s, 1)},
        "command": "python benchmarks/hybrid_tuning.py --dataset datasets/scifact --split train --threads 2",
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
