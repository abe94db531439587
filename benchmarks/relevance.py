"""Relevance on every shared collection (full test splits): BM25, the untrained model, the default
model, label-free adaptation and hybrid search, with paired t-tests for the headline comparisons.

    .venv/bin/python benchmarks/relevance.py [COLLECTION ...] [--no-adapt] [--adapt-steps 150]
        [--out benchmarks/results/relevance.json] [--markdown docs/relevance-table.md]

Per collection (default: the six folders of ../shared/data):

- ``bm25`` / ``bm25-stem``: bm25s, plain / Snowball-stemmed (the project's BM25Retriever);
- ``untrained``: the packaged SPLADE-tiny, inference-free, the collection's own IDF;
- ``default``: the default model (``idfsplade-tiny``), the collection's own IDF;
- ``adapted``: ``idfsplade adapt`` on the collection's corpus alone (starting from the default model;
  training never opens queries or qrels), then evaluated like the others;
- ``hybrid-default`` / ``hybrid-adapted``: stemmed BM25 ⊕ that sparse run, per-query min-max and the
  weight chosen on SciFact train (idfsplade/search/hybrid.py, benchmarks/results/hybrid_tuning.json);
- with ``--mini``: ``mini`` (the composite ``idfsplade-mini``: idfsplade-tiny + α · all-MiniLM-L6-v2's
  tied vocabulary head, one sparse vector), ``hybrid-mini`` (stemmed BM25 ⊕ mini, the same fusion), and
  with ``--mini-untrained`` also ``mini-untrained`` (the same sum with the head's untrained bias, −2).

Everything is cached by content under ``--work`` (runs/relevance), so a rerun only redoes what changed.
Writes JSON ``{"rows": [{"dataset", "retriever", "ndcg10", "recall100"}, …], "means": …, "tests": …}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
NAMES = ("bm25", "bm25-stem", "untrained", "default", "adapted", "mini-untrained", "mini", "hybrid-default",
         "hybrid-adapted", "hybrid-mini")
PAIRS = [("untrained", "default"), ("default", "adapted"), ("bm25-stem", "hybrid-default"),
         ("default", "hybrid-default"), ("bm25-stem", "hybrid-adapted"), ("adapted", "hybrid-adapted"),
         ("default", "mini"), ("bm25-stem", "mini"), ("mini-untrained", "mini"), ("bm25-stem", "hybrid-mini"),
         ("default", "hybrid-mini"), ("mini", "hybrid-mini")]


def evaluate_collection(dataset, work: Path, default_model: str, adapt: bool, adapt_steps: int,
                        mini: str | None = None, mini_untrained: Path | None = None):
    """Rows (name → ResultRow) and runs (name → TREC run path) of one collection (a ``BeirDataset``)."""
    from idfsplade.pipeline import SparseModelSpec, evaluate_dataset
    from idfsplade.search.hybrid import HybridSpec

    specs = {"untrained": SparseModelSpec(model="splade-tiny", name="untrained"),
             "default": SparseModelSpec(model=default_model, name="default")}
    if mini_untrained is not None:
        specs["mini-untrained"] = SparseModelSpec(model=str(mini_untrained), name="mini-untrained")
    if mini:
        specs["mini"] = SparseModelSpec(model=mini, name="mini")
    if adapt:
        from idfsplade.train.adapt import adapt_config
        from idfsplade.train.trainer import train

        config = adapt_config(dataset.path, out=work / "adapt" / dataset.name, model=default_model, max_steps=adapt_steps)
        specs["adapted"] = SparseModelSpec(model=str(train(config)), name="adapted")
    hybrid = HybridSpec()
    rows = evaluate_dataset(dataset, "test", work / dataset.name, list(specs.values()),
                            bm25_stemmers=(None, "english"), hybrid=hybrid)
    named, runs = {}, {}
    for row in rows:
        label = row.retriever
        if label == "bm25":
            name = "bm25"
        elif label.startswith("bm25-stem"):
            name = "bm25-stem"
        elif label.startswith("hybrid"):
            name = "hybrid-" + next(n for n in specs if f"+{n} " in label)
        else:
            name = label.split(" ")[0]
        named[name] = row
    base = work / dataset.name
    runs["bm25"], runs["bm25-stem"] = base / "runs" / "bm25.trec", base / "runs" / "bm25-stem-english.trec"
    for name, spec in specs.items():
        folder_ = base / _slug(spec)
        runs[name] = folder_ / "runs" / f"{spec.label}.trec"
        hybrid_runs = sorted((folder_ / "runs").glob("hybrid-*.trec"))
        if hybrid_runs:
            runs[f"hybrid-{name}"] = hybrid_runs[0]
    return named, runs


def _untrained_mini(work: Path, mini: str | None) -> Path:
    """The composite's folder with its tied head's bias reset to its start (written once under ``work``)."""
    from idfsplade.model import load_sparse_encoder, resolve_model
    from idfsplade.model.composite import build_composite_encoder, composite_of

    folder = work / "models" / "mini-untrained"
    if not (folder / "idf.json").exists():  # written last: a folder cut short by a kill is rebuilt
        source = Path(resolve_model(mini or "idfsplade-mini"))
        parts = composite_of(load_sparse_encoder(str(source))).parts
        build_composite_encoder(parts, source / "idf.json").save(str(folder))
        (folder / "idf.json").write_bytes((source / "idf.json").read_bytes())
    return folder


def _slug(spec) -> str:
    from idfsplade.pipeline import spec_slug as slug

    return slug(spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("collections", nargs="*", type=Path)
    parser.add_argument("--default-model", default="idfsplade-tiny")
    parser.add_argument("--no-adapt", dest="adapt", action="store_false")
    parser.add_argument("--adapt-steps", type=int, default=150)
    parser.add_argument("--mini", nargs="?", const="idfsplade-mini", default=None,
                        help="add the composite model (default: idfsplade-mini) and its hybrid")
    parser.add_argument("--mini-untrained", action="store_true",
                        help="add the composite with its tied head untrained (bias -2)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "relevance")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "relevance.json")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()

    import torch

    from idfsplade.data import BeirDataset
    from idfsplade.evaluate import read_trec_run
    from idfsplade.evaluate.metrics import paired_t_test

    torch.set_num_threads(2)
    # the collections with a test split (pubmedqa and wikiqa are training data only)
    folders = args.collections or sorted(p for p in SHARED.iterdir() if (p / "qrels" / "test.tsv").exists())
    datasets = [BeirDataset(folder) for folder in folders]  # a wrong path fails now, not an hour in
    untrained_mini = _untrained_mini(args.work, args.mini) if args.mini_untrained else None
    out_rows, tests, seconds = [], [], {}
    for dataset in datasets:
        start = time.perf_counter()
        named, runs = evaluate_collection(dataset, args.work, args.default_model, args.adapt, args.adapt_steps,
                                          args.mini, untrained_mini)
        seconds[dataset.name] = round(time.perf_counter() - start, 1)
        for name in NAMES:
            if name in named:
                metrics = named[name].metrics
                out_rows.append({"dataset": dataset.name, "retriever": name, "ndcg10": round(metrics["nDCG@10"], 4),
                                 "recall100": round(metrics["Recall@100"], 4)})
        _, qrels = dataset.split_queries("test", doc_ids=set(dataset.doc_ids()))
        for a, b in PAIRS:
            if a in runs and b in runs and runs[a].exists() and runs[b].exists():
                test = paired_t_test(qrels, read_trec_run(runs[a]), read_trec_run(runs[b]))
                tests.append({"dataset": dataset.name, "a": a, "b": b, "delta": round(test.delta, 4),
                              "wins": test.wins, "losses": test.losses, "p": round(test.p_value, 4)})
        print(f"{dataset.name}: done in {seconds[dataset.name]} s", flush=True)
    means = {}
    for name in NAMES:
        values = [r["ndcg10"] for r in out_rows if r["retriever"] == name]
        if len(values) == len(datasets):
            means[name] = round(sum(values) / len(values), 4)
    result = {"split": "test", "collections": [d.name for d in datasets], "default_model": args.default_model,
              "adapt_steps": args.adapt_steps if args.adapt else None, "rows": out_rows, "means": means,
              "tests": tests, "seconds": seconds}
    from idfsplade.atomic import atomic_write_json  # the benchmarks' one JSON writer

    atomic_write_json(args.out, result)
    table = render(result) + "\n\n" + render_tests(result)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")


def render(result: dict) -> str:
    names = [n for n in NAMES if any(r["retriever"] == n for r in result["rows"])]
    lines = ["| collection | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for dataset in result["collections"]:
        cells = []
        for name in names:
            row = next((r for r in result["rows"] if r["dataset"] == dataset and r["retriever"] == name), None)
            cells.append(f"{row['ndcg10']:.4f} / {row['recall100']:.3f}" if row else "—")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines.append("| **mean nDCG@10** | " + " | ".join(f"**{result['means'][n]:.4f}**" if n in result["means"]
                                                    else "—" for n in names) + " |")
    return "\n".join(lines)


def render_tests(result: dict) -> str:
    """The paired t-tests (nDCG@10 per query): b − a, queries b wins / loses, two-sided p."""
    lines = ["| collection | comparison | Δ nDCG@10 | W/L | p |", "|---|---|---|---|---|"]
    for t in result["tests"]:
        lines.append(f"| {t['dataset']} | {t['b']} vs {t['a']} | {t['delta']:+.4f} | {t['wins']}/{t['losses']} | "
                     f"{t['p']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
