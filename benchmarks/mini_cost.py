"""What idfsplade-mini costs beside idfsplade-tiny, in one run: encoding speed, vector size, FLOPS and exact-index
search latency, with the nDCG@10 each encoding gives.

    .venv/bin/python benchmarks/mini_cost.py [--dataset ../shared/data/scifact] [--docs 1024] [--block 128]
        [--vectors runs/relevance/scifact/vectors] [--out benchmarks/results/mini_cost.json]

Variants (the first is the baseline): ``tiny`` (idfsplade-tiny, the default chunked fp32 path), ``mini-fp32``
(idfsplade-mini, both parts fp32), ``mini-bf16`` (its tied all-MiniLM-L6-v2 part under bf16: what ``encode``
picks by itself where the CPU has native bf16; skipped, and said so, where it has not).

Encoding: the first ``--docs`` documents, cut into blocks of ``--block``; every block is encoded by each variant
in turn, the order rotating from block to block, so load swings hit all alike; throughput = documents / summed
encode time. nDCG@10 on that sub-corpus (queries with a judged document in it; corpus IDF, no model at query
time) and each variant's largest weight difference from ``mini-fp32``.

Search: with ``--vectors`` (the folder ``benchmarks/relevance.py --mini`` fills: ``default/`` and ``mini/``
vector folders of the full corpus), the exact index of each is searched with every test query, interleaved
and repeated; p50/p99 ms per query, nnz per document and FLOPS (the expected number of multiplications per
query-document pair, :func:`idfsplade.vectors.sparsity_stats`).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def encode_blocks(encoders: dict, texts: list[str], block: int) -> tuple[dict, dict]:
    import scipy.sparse as sp

    seconds = {name: 0.0 for name in encoders}
    parts = {name: [] for name in encoders}
    names = list(encoders)
    for b, start in enumerate(range(0, len(texts), block)):
        chunk = texts[start:start + block]
        for name in names[b % len(names):] + names[:b % len(names)]:
            t0 = time.perf_counter()
            parts[name].append(encoders[name].encode(chunk))
            seconds[name] += time.perf_counter() - t0
    return seconds, {name: sp.vstack(blocks, format="csr") for name, blocks in parts.items()}


def subcorpus_ndcg(dataset, doc_ids: list[str], vectors, query_encoder) -> float:
    from idfsplade.evaluate import evaluate_run
    from idfsplade.train.experiment import top_k_run

    queries, qrels = dataset.split_queries("test", doc_ids=set(dataset.doc_ids()))
    inside = set(doc_ids)
    qrels = {q: {d: r for d, r in rel.items() if d in inside} for q, rel in qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if any(r > 0 for r in rel.values())}
    texts = [queries[q] for q in qrels]
    scores = (query_encoder.to_csr(query_encoder.encode_batch(texts)) @ vectors.T).toarray()
    run = top_k_run(scores, list(qrels), doc_ids)
    # what the index returns: matched documents only
    return evaluate_run(qrels, {q: {d: s for d, s in hits.items() if s > 0} for q, hits in run.items()})["nDCG@10"]


def search_latency(folders: dict[str, Path], dataset, encoder, repeats: int = 3) -> dict:
    """Per vectors folder: nnz, FLOPS and the exact index's latency over the test queries (corpus IDF)."""
    import numpy as np

    from idfsplade.index import InvertedIndex
    from idfsplade.vectors import load_csr, sparsity_stats

    queries, _ = dataset.split_queries("test", doc_ids=set(dataset.doc_ids()))
    encoded = encoder.encode_batch(list(queries.values()))
    rows, setups = {}, {}
    for name, folder in folders.items():
        docs, ids, _ = load_csr(folder)
        stats = sparsity_stats(encoder.to_csr(encoded), docs)
        setups[name] = (InvertedIndex.from_csr(docs, ids), encoded)
        rows[name] = {"nnz_per_doc": round(docs.nnz / docs.shape[0], 1), "flops": round(stats.flops, 3), "ms": []}
    for _ in range(repeats):
        for name, (index, encoded) in setups.items():
            for query in encoded:
                t0 = time.perf_counter()
                index.search(query.ids, query.weights, k=10)
                rows[name]["ms"].append((time.perf_counter() - t0) * 1000)
    for row in rows.values():
        ms = np.asarray(row.pop("ms"))
        row["p50_ms"], row["p99_ms"] = round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 99)), 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--docs", type=int, default=1024)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vectors", type=Path, default=REPO / "runs" / "relevance" / "scifact" / "vectors")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "mini_cost.json")
    args = parser.parse_args()

    import torch

    from idfsplade.atomic import atomic_write_json
    from idfsplade.data import BeirDataset, document_text
    from idfsplade.idf import IdfTable
    from idfsplade.model import DocumentEncoder, load_sparse_encoder
    from idfsplade.model.composite import native_bf16
    from idfsplade.model.inference_free import load_tokenizer
    from idfsplade.query.encoder import QueryEncoder

    torch.set_num_threads(args.threads)
    dataset = BeirDataset(args.dataset)
    docs = list(dataset.iter_corpus())[:args.docs]
    texts, doc_ids = [document_text(d) for d in docs], [d.id for d in docs]
    tiny, mini = load_sparse_encoder("idfsplade-tiny"), load_sparse_encoder("idfsplade-mini")
    encoders = {"tiny": DocumentEncoder(tiny), "mini-fp32": DocumentEncoder(mini, precision="fp32")}
    bf16 = native_bf16("cpu")
    if bf16:
        encoders["mini-bf16"] = DocumentEncoder(mini, precision="bf16")
    cpu = torch.backends.cpu.get_cpu_capability()
    print(f"{len(texts)} documents of {dataset.name}; CPU capability {cpu}, native bf16: {bf16}; "
          f"threads {args.threads}; load {os.getloadavg()[0]:.1f}", flush=True)
    seconds, vectors = encode_blocks(encoders, texts, args.block)
    tokenizer = load_tokenizer("idfsplade-tiny")
    idf = IdfTable.from_corpus([document_text(d) for d in dataset.iter_corpus()], tokenizer)
    query_encoder = QueryEncoder(tokenizer, idf.weights)
    rows = []
    for name in encoders:
        matrix = vectors[name]
        rows.append({"variant": name, "docs_per_s": round(len(texts) / seconds[name], 2),
                     "speed_vs_tiny": round(seconds["tiny"] / seconds[name], 3),
                     "nnz_per_doc": round(matrix.nnz / matrix.shape[0], 1),
                     "ndcg10_subcorpus": round(subcorpus_ndcg(dataset, doc_ids, matrix, query_encoder), 4),
                     "max_abs_diff_vs_mini_fp32": (round(float(abs(matrix - vectors["mini-fp32"]).max()), 4)
                                                   if name.startswith("mini") else None)})
    search = {}
    folders = {name: args.vectors / name for name in ("default", "mini")}
    if all((f / "meta.json").exists() for f in folders.values()):
        search = search_latency(folders, dataset, query_encoder)
    result = {"dataset": dataset.name, "docs": len(texts), "cpu_capability": cpu, "native_bf16": bf16,
              "torch": torch.__version__, "threads": args.threads, "encode": rows,
              "search": search or "no full-corpus vectors: run benchmarks/relevance.py --mini first"}
    atomic_write_json(args.out, result)
    print("| variant | docs/s | × tiny | nnz/doc | nDCG@10 (sub-corpus) | max |Δw| vs mini-fp32 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['docs_per_s']} | {r['speed_vs_tiny']} | {r['nnz_per_doc']} | "
              f"{r['ndcg10_subcorpus']} | {r['max_abs_diff_vs_mini_fp32']} |")
    if search:
        print("\n| vectors (full corpus) | nnz/doc | FLOPS | p50 ms | p99 ms |\n|---|---|---|---|---|")
        for name, r in search.items():
            print(f"| {name} | {r['nnz_per_doc']} | {r['flops']} | {r['p50_ms']} | {r['p99_ms']} |")


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
