"""Document encoding speed on SciFact: the previous full-logits path against the chunked default and
the opt-in options, in one run, with the nDCG@10 each path's vectors give.

Variants (``--variants``; the first is the baseline, ``chunked`` is the default path):

- ``full``: the previous path (``DocumentEncoder(pooling="full")``): the whole ``batch × length ×
  vocab`` logits tensor, then max pooling;
- ``chunked``: the default: vocabulary projection chunk by chunk into a reused buffer;
- ``chunked-int8``: the same with a dynamically quantised (int8) vocabulary projection;
- ``chunked-bf16``: the same under bf16 autocast (body and projection);
- ``chunked-bs16`` / ``chunked-bs64`` / ``chunked-c64`` / ``chunked-c256``: other batch and chunk sizes.

Timing: the corpus is cut into blocks of ``--block`` documents; each block is encoded by every variant
in turn, the order rotating from block to block, so load swings on a shared machine hit all variants
alike. Throughput = documents / summed encode time (tokenization included, model loading not).
Variants listed in ``--subset-variants`` (bf16 by default: ~10x slower on a CPU without native bf16)
only run on the first ``--subset-docs`` documents and get a speed ratio there, no nDCG.

Quality: each full-corpus variant's vectors are indexed (exact inverted index), searched with the
SciFact test queries weighted by the corpus IDF (no model call), and scored with nDCG@10; ``max_abs_diff``
is the largest weight difference against the baseline's vectors.

Usage: ``python benchmarks/encode_speed.py [--docs N] [--threads 2]`` (``--docs`` encodes the first N
documents only, for a quick check; nDCG is then computed on that sub-corpus). Writes
``benchmarks/results/encode_speed.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import scipy.sparse as sp
import torch

from idfsplade.atomic import atomic_write_json
from idfsplade.data import BeirDataset, document_text
from idfsplade.evaluate import evaluate_run
from idfsplade.idf import IdfTable
from idfsplade.index import InvertedIndex
from idfsplade.integrity import portable_path
from idfsplade.model import DocumentEncoder, build_inference_free_encoder, model_query_encoder, resolve_model
from idfsplade.search import InferenceFreeRetriever

REPO = Path(__file__).resolve().parents[1]

VARIANTS = {  # name -> DocumentEncoder keyword arguments ("threads": torch.set_num_threads around it)
    "full": {"pooling": "full", "precision": "fp32"},
    "chunked": {},
    "chunked-int8": {"precision": "int8"},
    "chunked-bf16": {"precision": "bf16"},
    "chunked-1thread": {"threads": 1},
    "full-1thread": {"pooling": "full", "precision": "fp32", "threads": 1},
    "chunked-bs16": {"batch_size": 16},
    "chunked-bs64": {"batch_size": 64},
    "chunked-c128": {"chunk_size": 128},
    "chunked-c4096": {"chunk_size": 4096},
}
DEFAULT_VARIANT = "chunked"


@dataclass
class Result:
    variant: str
    kwargs: dict
    docs: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time (user + system, all threads) while this variant ran
    docs_per_s: float = 0.0
    speedup: float = 0.0  # docs_per_s / the baseline's docs_per_s on the same documents
    cpu_speedup: float = 0.0  # the same with CPU time: less sensitive to other jobs on the machine
    ndcg10: float | None = None
    ndcg10_delta: float | None = None
    max_abs_diff: float | None = None
    nnz_per_doc: float | None = None
    block_seconds: list[float] = field(default_factory=list)


def _encoder_kwargs(variant: dict) -> dict:
    return {k: v for k, v in variant.items() if k != "threads"}  # threads: torch.set_num_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=str(REPO / "datasets" / "scifact"))
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--split", default="test")
    parser.add_argument("--docs", type=int, default=None, help="encode only the first N documents")
    parser.add_argument("--variants", default="full,chunked,chunked-int8,chunked-1thread,full-1thread")
    parser.add_argument("--subset-variants", default="chunked-int8,chunked-1thread,full-1thread,chunked-bf16")
    parser.add_argument("--subset-docs", type=int, default=256)
    parser.add_argument("--block", type=int, default=512, help="documents per interleaved block")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "encode_speed.json"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    names = args.variants.split(",")
    subset_names = [n for n in args.subset_variants.split(",") if n in names]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or names[0] != "full" or DEFAULT_VARIANT not in names:
        parser.error(f"--variants: known {list(VARIANTS)}; the first must be 'full' and '{DEFAULT_VARIANT}' "
                     f"must be in the list (unknown: {unknown})")

    dataset = BeirDataset(args.dataset)
    docs = list(dataset.iter_corpus())[:args.docs]
    texts, doc_ids = [document_text(d) for d in docs], [d.id for d in docs]
    path = resolve_model(args.model)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    idf = IdfTable.from_corpus(texts, tokenizer)
    model = build_inference_free_encoder(path, idf, device="cpu")
    encoders = {n: DocumentEncoder(model, **{"batch_size": args.batch_size, **_encoder_kwargs(VARIANTS[n])})
                for n in names}
    threads = {n: VARIANTS[n].get("threads", args.threads) for n in names}
    n_tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"])
    print(f"{len(texts)} documents, {n_tokens} tokens; torch {torch.__version__}, {args.threads} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}; load {os.getloadavg()[0]:.1f}", flush=True)

    for encoder in encoders.values():  # warm-up (and the chunked path's one-off self-check)
        encoder.encode(texts[:4])

    results = {n: Result(n, VARIANTS[n], args.subset_docs if n in subset_names else len(texts)) for n in names}
    matrices: dict[str, list[sp.csr_matrix]] = {n: [] for n in names}
    subset_baseline = Result("full (subset)", VARIANTS["full"], min(args.subset_docs, len(texts)))
    load_before = os.getloadavg()
    for block_no, start in enumerate(range(0, len(texts), args.block)):
        block = texts[start:start + args.block]
        order = names[block_no % len(names):] + names[:block_no % len(names)]
        for name in order:
            if name in subset_names and start >= args.subset_docs:
                continue
            part = block[:max(0, args.subset_docs - start)] if name in subset_names else block
            torch.set_num_threads(threads[name])
            t0, c0 = time.perf_counter(), time.process_time()
            matrix = encoders[name].encode(part)
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - c0
            results[name].seconds += elapsed
            results[name].cpu_seconds += cpu
            results[name].block_seconds.append(round(elapsed, 3))
            matrices[name].append(matrix)
            if name == "full" and subset_names and start < args.subset_docs:
                # The baseline's time on the subset-variants' documents, for their ratio.
                if len(part) > args.subset_docs - start:
                    torch.set_num_threads(threads["full"])
                    t0, c0 = time.perf_counter(), time.process_time()
                    encoders["full"].encode(part[:args.subset_docs - start])
                    subset_baseline.seconds += time.perf_counter() - t0
                    subset_baseline.cpu_seconds += time.process_time() - c0
                else:
                    subset_baseline.seconds += elapsed
                    subset_baseline.cpu_seconds += cpu
        done = min(start + args.block, len(texts))
        print(f"  block {block_no}: {done}/{len(texts)} docs, load {os.getloadavg()[0]:.1f}; " + ", ".join(
            f"{n} {results[n].seconds:.0f}s ({results[n].cpu_seconds:.0f}s CPU)" for n in names), flush=True)
    load_after = os.getloadavg()

    queries, qrels = dataset.split_queries(args.split)
    if args.docs is not None:  # a sub-corpus: keep the judgements of its documents
        kept = set(doc_ids)
        qrels = {q: judged for q, rels in qrels.items() if (judged := {d: g for d, g in rels.items() if d in kept})}
        queries = {q: queries[q] for q in qrels}
    query_encoder = model_query_encoder(model)
    base = sp.vstack(matrices["full"], format="csr")
    for name in names:
        r = results[name]
        r.docs_per_s = r.docs / r.seconds
        baseline = subset_baseline if name in subset_names else results["full"]
        r.speedup = (r.docs / r.seconds) / (baseline.docs / baseline.seconds)
        r.cpu_speedup = (r.docs / r.cpu_seconds) / (baseline.docs / baseline.cpu_seconds)
        matrix = sp.vstack(matrices[name], format="csr")
        r.max_abs_diff = float(abs(matrix - base[:matrix.shape[0]]).max()) if matrix.nnz or base.nnz else 0.0
        r.nnz_per_doc = matrix.nnz / matrix.shape[0]
        if name in subset_names:
            continue
        retriever = InferenceFreeRetriever(query_encoder, InvertedIndex.from_csr(matrix, doc_ids))
        r.ndcg10 = evaluate_run(qrels, retriever.search_many(queries, k=100))["nDCG@10"]
    for r in results.values():
        if r.ndcg10 is not None:
            r.ndcg10_delta = r.ndcg10 - results["full"].ndcg10

    default = results[DEFAULT_VARIANT]
    report = {
        "baseline_docs_per_s": results["full"].docs_per_s,
        "default_docs_per_s": default.docs_per_s,
        "speedup": default.speedup,
        "cpu_speedup": default.cpu_speedup,
        "ndcg10_delta": default.ndcg10_delta,
        "baseline": "full", "default": DEFAULT_VARIANT,
        "ndcg10_baseline": results["full"].ndcg10, "ndcg10_default": default.ndcg10,
        "docs": len(texts), "tokens": n_tokens, "queries": len(queries), "split": args.split,
        "dataset": portable_path(args.dataset, REPO),
        "model": args.model, "batch_size": args.batch_size, "threads": args.threads, "block": args.block,
        "subset_docs": args.subset_docs, "subset_variants": subset_names,
        "subset_baseline_docs_per_s": subset_baseline.docs / subset_baseline.seconds if subset_names else None,
        "load_average_before": load_before[0], "load_average_after": load_after[0],
        "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(), "command": "python " + " ".join(sys.argv),
        "variants": [asdict(r) for r in results.values()],
    }
    atomic_write_json(Path(args.out), report, indent=2)

    print()
    print("| variant | docs | docs/s | speedup vs full | CPU-time speedup | nDCG@10 | Δ nDCG@10 | max |Δw| | nnz/doc |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results.values():
        ndcg = f"{r.ndcg10:.4f}" if r.ndcg10 is not None else "–"
        delta = f"{r.ndcg10_delta:+.4f}" if r.ndcg10_delta is not None else "–"
        print(f"| {r.variant} | {r.docs:,} | {r.docs_per_s:.1f} | {r.speedup:.2f}x | {r.cpu_speedup:.2f}x | {ndcg} | {delta} | "
              f"{r.max_abs_diff:.1e} | {r.nnz_per_doc:.1f} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
