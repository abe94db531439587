"""Hybrid-search alternatives that were measured and not adopted, so that the evidence stays reproducible.

    .venv/bin/python benchmarks/hybrid_alternatives.py [COLLECTION ...] [--pseudo-queries 200]

Three questions, with the default model (``idfsplade-tiny``, the collection's own IDF) and stemmed BM25:

1. **Other score normalizations.** The shipped fusion is OpenSearch's min-max + arithmetic mean at
   w = 0.5 (``idfsplade.search.hybrid``, chosen on SciFact train by benchmarks/hybrid_tuning.py).
   Here the same weighted mean is computed after z-score, l2, max and distribution-based (mean ± 3σ,
   "DBSF") normalization of each list. These four are the textbook forms, written here (a document
   missing from a list scores 0 there); they are not claimed to match any engine's implementation.
   Selection set: SciFact **train** queries with the untrained SPLADE-tiny (as in hybrid_tuning.py);
   the six test splits are reported, not used to choose.
2. **A label-free weight per corpus.** For every collection, ``--pseudo-queries`` pseudo-queries are
   made from its corpus alone with ``idfsplade adapt``'s generators (title, sentence, span, terms;
   the query text is cut out of its source document, which is then re-encoded and re-indexed in its
   cut form). The fusion weight with the best nDCG@10 on them is compared, on the real test queries,
   with the fixed w = 0.5 and with the best weight in hindsight.
3. **A weight per query from a query-performance predictor.** Each list's predictor is scale-free:
   ``cv`` (the coefficient of variation of its top-k scores, a scale-free form of NQC, Shtok et al.
   2012) or ``gap`` ((top score − mean of the top k) / top score), at k = 10 and 100; the sparse
   weight of a query is ``p_sparse / (p_sparse + p_lexical)``, then min-max fusion as shipped. The
   predictor is chosen on the selection set and reported on the six.

Document vectors come from ``benchmarks/relevance.py``'s cache (``--work``, runs/relevance); anything
missing there is encoded first (minutes per collection). Writes ``benchmarks/results/hybrid_alternatives.json``
and prints Markdown tables (docs/results.md, "Hybrid alternatives").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
NORMALIZATIONS = ("min_max", "z_score", "l2", "max", "dbsf")
WEIGHTS = [round(0.1 * i, 1) for i in range(2, 9)]
DEPTH = 100


def normalize(scores: dict[str, float], how: str) -> dict[str, float]:
    """One list's scores under ``how`` (``z_score``, ``l2``, ``max`` or ``dbsf``)."""
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    mean, std = values.mean(), values.std()
    if how == "z_score":
        return {d: (s - mean) / (std or 1.0) for d, s in scores.items()}
    if how == "l2":
        norm = float(np.sqrt((values ** 2).sum())) or 1.0
        return {d: s / norm for d, s in scores.items()}
    if how == "max":
        top = float(values.max()) or 1.0
        return {d: s / top for d, s in scores.items()}
    low = mean - 3 * std  # dbsf
    return {d: (s - low) / ((6 * std) or 1.0) for d, s in scores.items()}


def fuse(lexical: dict, sparse: dict, weight: float, how: str = "min_max") -> dict:
    """Per query: ``(1 - weight) · norm(lexical) + weight · norm(sparse)``; min-max is the shipped
    OpenSearch fusion (``fuse_runs``), the others are written here."""
    from idfsplade.search.hybrid import fuse_runs

    if how == "min_max":
        return fuse_runs([lexical, sparse], [1 - weight, weight], "min_max", k=DEPTH)
    out = {}
    for q in dict.fromkeys([*lexical, *sparse]):
        a, b = (normalize(x, how) if x else {} for x in (lexical.get(q, {}), sparse.get(q, {})))
        fused = {d: (1 - weight) * a.get(d, 0.0) + weight * b.get(d, 0.0) for d in {*a, *b}}
        out[q] = dict(sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:DEPTH])
    return out


PREDICTORS = ("cv@10", "gap@10", "cv@100", "gap@100")


def predict(scores: dict[str, float], predictor: str) -> float:
    """A scale-free query-performance prediction from one list's top scores (higher: more confident)."""
    name, k = predictor.split("@")
    top = np.sort(np.fromiter(scores.values(), dtype=np.float64, count=len(scores)))[::-1][:int(k)]
    if not len(top) or top[0] <= 0:
        return 0.0
    return float(top.std() / top.mean()) if name == "cv" else float((top[0] - top.mean()) / top[0])


def fuse_per_query(lexical: dict, sparse: dict, predictor: str) -> dict:
    """Min-max fusion with each query's sparse weight ``p_sparse / (p_sparse + p_lexical)``."""
    from idfsplade.search.hybrid import fuse

    out = {}
    for q in dict.fromkeys([*lexical, *sparse]):
        a, b = lexical.get(q, {}), sparse.get(q, {})
        pa, pb = predict(a, predictor), predict(b, predictor)
        weight = pb / (pa + pb) if pa + pb > 0 else 0.5
        out[q] = fuse([a, b], [1 - weight, weight], "min_max", k=DEPTH)
    return out


def ndcg(qrels: dict, run: dict) -> float:
    from idfsplade.evaluate import evaluate_run

    return round(float(evaluate_run(qrels, run)["nDCG@10"]), 4)


def sparse_retriever(dataset, work: Path, model: str, name: str):
    from idfsplade.pipeline import SparseModelSpec, spec_slug, build_sparse_retriever

    spec = SparseModelSpec(model=model, name=name)
    base = work / dataset.name
    retriever, docs = build_sparse_retriever(spec, dataset, base / spec_slug(spec),
                                             base / "vectors" / spec_slug(spec, with_idf=False))
    return spec, retriever, docs


def label_free_weight(dataset, corpus: list, texts: list[str], work: Path, spec, retriever, docs,
                      n_queries: int, seed: int) -> dict:
    """nDCG@10 of each part and fusion weight on pseudo-queries whose source documents are cut."""
    from idfsplade.index import InvertedIndex
    from idfsplade.model import DocumentEncoder
    from idfsplade.pipeline import load_model, spec_slug
    from idfsplade.search import BM25Retriever, InferenceFreeRetriever
    from idfsplade.train.examples import DEFAULT_PSEUDO_QUERIES, WordIdf, pseudo_queries

    doc_ids = [d.id for d in corpus]
    rng = np.random.default_rng(seed)
    word_idf = WordIdf(texts)
    queries, cut, qrels = {}, {}, {}
    for i in rng.permutation(len(corpus)).tolist():
        made = pseudo_queries(corpus[i], DEFAULT_PSEUDO_QUERIES, rng, word_idf, 1)
        if made:
            qid = f"pq-{i}"
            queries[qid], cut[i], qrels[qid] = made[0][1], made[0][2], {doc_ids[i]: 1}
        if len(queries) == min(n_queries, len(corpus) // 2):
            break
    model, _ = load_model(spec, dataset, work / dataset.name / spec_slug(spec))
    encoder = DocumentEncoder(model, batch_size=spec.batch_size, max_length=spec.max_length, prune=spec.prune)
    rows = list(cut)
    docs = docs.tolil(copy=True)
    docs[rows] = encoder.encode([cut[i] for i in rows])
    index = InvertedIndex.from_csr(docs.tocsr(), doc_ids)
    sparse = InferenceFreeRetriever(retriever.query_encoder, index).search_many(queries, k=DEPTH)
    lexical = BM25Retriever(doc_ids, [cut.get(i, t) for i, t in enumerate(texts)], stemmer="english"
                            ).search_many(queries, k=DEPTH)
    scores = {"bm25-stem": ndcg(qrels, lexical), "sparse": ndcg(qrels, sparse)}
    scores.update({str(w): ndcg(qrels, fuse(lexical, sparse, w)) for w in WEIGHTS})
    return {"queries": len(queries), "ndcg10": scores,
            "chosen_weight": max(WEIGHTS, key=lambda w: (scores[str(w)], -abs(w - 0.5)))}


def main() -> None:
    from idfsplade.data import BeirDataset, document_text
    from idfsplade.model.registry import DEFAULT_DOC_MODEL
    from idfsplade.search import BM25Retriever

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("collections", nargs="*", type=Path)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "relevance")
    parser.add_argument("--scifact", type=Path, default=REPO / "datasets" / "scifact")
    parser.add_argument("--pseudo-queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "hybrid_alternatives.json")
    args = parser.parse_args()
    # the collections with a test split (pubmedqa and wikiqa are training data only)
    folders = args.collections or sorted(p for p in SHARED.iterdir() if (p / "qrels" / "test.tsv").exists())
    datasets = [BeirDataset(folder) for folder in folders]  # a wrong path fails now, not minutes in
    start = time.perf_counter()

    def parts(dataset, corpus, texts, split, model, name):
        spec, retriever, docs = sparse_retriever(dataset, args.work, model, name)
        queries, qrels = dataset.split_queries(split)
        lexical = BM25Retriever([d.id for d in corpus], texts, stemmer="english").search_many(queries, k=DEPTH)
        return spec, retriever, docs, qrels, lexical, retriever.search_many(queries, k=DEPTH)

    def read_corpus(dataset):
        corpus = list(dataset.iter_corpus())
        return corpus, [document_text(d) for d in corpus]

    # 1. the selection set: SciFact train, untrained SPLADE-tiny (never the test split)
    scifact = BeirDataset(args.scifact)
    _, _, _, qrels, lexical, sparse = parts(scifact, *read_corpus(scifact), "train", "splade-tiny", "untrained")
    selection = {how: ndcg(qrels, fuse(lexical, sparse, 0.5, how)) for how in NORMALIZATIONS}
    per_query = {p: ndcg(qrels, fuse_per_query(lexical, sparse, p)) for p in PREDICTORS}
    chosen = max(PREDICTORS, key=lambda p: per_query[p])
    result = {"selection": {"dataset": "scifact", "split": "train", "model": "splade-tiny", "weight": 0.5,
                            "bm25-stem": ndcg(qrels, lexical), "sparse": ndcg(qrels, sparse), "ndcg10": selection,
                            "per_query_weight": per_query, "chosen_predictor": chosen},
              "collections": []}
    print(f"SciFact train (selection): {selection} {per_query}", flush=True)
    for dataset in datasets:
        corpus, texts = read_corpus(dataset)
        spec, retriever, docs, qrels, lexical, sparse = parts(dataset, corpus, texts, "test", DEFAULT_DOC_MODEL,
                                                              "default")
        row = {"dataset": dataset.name, "bm25-stem": ndcg(qrels, lexical), "default": ndcg(qrels, sparse),
               "normalizations": {how: ndcg(qrels, fuse(lexical, sparse, 0.5, how)) for how in NORMALIZATIONS},
               "weights": {str(w): ndcg(qrels, fuse(lexical, sparse, w)) for w in WEIGHTS},
               "per_query_weight": {p: ndcg(qrels, fuse_per_query(lexical, sparse, p)) for p in PREDICTORS}}
        row["label_free"] = label_free_weight(dataset, corpus, texts, args.work, spec, retriever, docs,
                                              args.pseudo_queries, args.seed)
        row["label_free"]["test_ndcg10_at_chosen"] = row["weights"][str(row["label_free"]["chosen_weight"])]
        result["collections"].append(row)
        print(f"{dataset.name}: {json.dumps(row)}", flush=True)
    rows = result["collections"]
    result["means"] = {
        **{how: round(float(np.mean([r["normalizations"][how] for r in rows])), 4) for how in NORMALIZATIONS},
        "label_free": round(float(np.mean([r["label_free"]["test_ndcg10_at_chosen"] for r in rows])), 4),
        **{f"per_query_weight/{p}": round(float(np.mean([r["per_query_weight"][p] for r in rows])), 4)
           for p in PREDICTORS}}
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["command"] = "python benchmarks/hybrid_alternatives.py"
    from idfsplade.atomic import atomic_write_json

    atomic_write_json(args.out, result)
    print(render(result))
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


def render(result: dict) -> str:
    sel, rows = result["selection"], result["collections"]

    def table(first: str) -> list[str]:
        return [f"| {first} | SciFact train (selection) | " + " | ".join(r["dataset"] for r in rows)
                + " | mean of the six |", "|---|---:|" + "---:|" * (len(rows) + 1)]

    def line(label: str, selection: float, values: list[float], mean: float) -> str:
        return f"| {label} | {selection:.4f} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {mean:.4f} |"

    lines = table("normalization (w = 0.5)")
    for how in NORMALIZATIONS:
        lines.append(line(how, sel["ndcg10"][how], [r["normalizations"][how] for r in rows], result["means"][how]))
    lines += ["", "| collection | w chosen on pseudo-queries | test nDCG@10 at that w | at w = 0.5 | best w on test (hindsight) |",
              "|---|---:|---:|---:|---:|"]
    for r in rows:
        best = max(WEIGHTS, key=lambda w: r["weights"][str(w)])
        lines.append(f"| {r['dataset']} | {r['label_free']['chosen_weight']} | {r['label_free']['test_ndcg10_at_chosen']:.4f}"
                     f" | {r['weights']['0.5']:.4f} | {best} ({r['weights'][str(best)]:.4f}) |")
    lines += ["", *table("sparse weight per query"),
              line("fixed 0.5 (shipped)", sel["ndcg10"]["min_max"], [r["normalizations"]["min_max"] for r in rows],
                   result["means"]["min_max"])]
    for p in PREDICTORS:
        label = f"{p} (chosen)" if p == sel["chosen_predictor"] else p
        lines.append(line(label, sel["per_query_weight"][p], [r["per_query_weight"][p] for r in rows],
                          result["means"][f"per_query_weight/{p}"]))
    return "\n".join(lines)

if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
