"""Retrieval quality on every BEIR collection given: BM25 and the inference-free model, one table.

    python benchmarks/evaluate_all.py datasets/scifact ../shared/data/* --out docs/results.md

Writes the Markdown table (with this command line) to ``--out`` and every row to ``<out>.json``.
Per dataset, the model is run with the IDF of that corpus; with ``--idf-from DATASET`` it is also run
with the IDF of that one corpus (e.g. SciFact's) on every other collection.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from idfsplade.atomic import atomic_write_json, atomic_write_text
from idfsplade.data import BeirDataset
from idfsplade.evaluate import render_markdown
from idfsplade.pipeline import SparseModelSpec, evaluate_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--split", default="test")
    parser.add_argument("--idf-from", type=Path, help="also run with this dataset's corpus IDF everywhere")
    parser.add_argument("--work", type=Path, default=Path("runs/evaluate_all"))
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()

    rows, timings = [], {}
    shared_idf = None
    if args.idf_from is not None:
        # The corpus run of --idf-from computes its idf.json first; it is copied to idf/<name>/idf.json,
        # whose folder name labels the rows that use it.
        name = BeirDataset(args.idf_from).name
        computed_idf = args.work / name / f"{Path(args.model).name}-corpus" / "idf.json"
        shared_idf = args.work / "idf" / name / "idf.json"
        order = [args.idf_from] + [d for d in args.datasets if d.resolve() != args.idf_from.resolve()]
    else:
        order = list(args.datasets)
    for path in order:
        ds = BeirDataset(path)
        start = time.perf_counter()
        specs = [SparseModelSpec(model=args.model, idf="corpus")]
        if shared_idf is not None and path.resolve() != args.idf_from.resolve():
            specs.append(SparseModelSpec(model=args.model, idf=str(shared_idf)))
        rows += evaluate_dataset(ds, args.split, args.work / ds.name, specs, bm25_stemmers=(None, "english"))
        timings[ds.name] = round(time.perf_counter() - start, 1)
        if shared_idf is not None and path.resolve() == args.idf_from.resolve():
            atomic_write_text(shared_idf, computed_idf.read_text(encoding="utf-8"))
        print(f"{ds.name}: done in {timings[ds.name]} s", file=sys.stderr, flush=True)

    command = "python " + " ".join([sys.argv[0], *sys.argv[1:]])
    text = ("# Retrieval quality\n\nBM25 (bm25s, k1=1.2, b=0.75, English stop words; plain and Snowball-stemmed) and the inference-free model on each "
            f"collection's `{args.split}` split. IDF column `corpus`: the evaluated corpus's own IDF; a dataset "
            "name: that corpus's IDF. q/d dims: mean active dimensions per query/document; FLOPS: "
            "Σ_j p_q(j)·p_d(j).\n\n"
            f"Made by `{command}`.\n\n" + render_markdown(rows)
            + "\nSeconds per dataset in this run (IDF + encode + index + search on 2 cores; vectors already "
            "in --work are reused, so a rerun only searches): "
            + ", ".join(f"{k} {v}" for k, v in timings.items()) + ".\n")
    atomic_write_text(args.out, text)
    atomic_write_json(args.out.with_suffix(".json"), {"command": command, "rows": [r.as_dict() for r in rows],
                                                      "seconds": timings})
    print(text)


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
