"""Ablation of the training recipe on SciFact: IDF-aware vs plain FLOPS, and the teachers.

Each variant is the base config plus overrides, trained with the same seed and step budget, then
evaluated on the full test split (nDCG@10, doc active dims, FLOPS). Finished variants are skipped
on rerun (their ``result.json`` is kept), so a killed ablation resumes. The table goes to
``docs/ablation.md`` (between the ``<!-- table -->`` markers) and ``<out>/ablation.json``.

    .venv/bin/python benchmarks/ablation.py --config configs/scifact-splade-tiny.yaml \
        --set training.max_steps=150 --variant idf-l1e-4 --variant binary-l1e-4 ...

Variants (``--variant NAME``, repeatable; default: all):

- ``binary-l<λ>`` — plain SPLADE-doc: binary query BoW, FLOPS λ;
- ``idf-l<λ>`` — IDF-aware: query BoW ⊙ idf, FLOPS λ;
- ``teacher-<kinds>`` — the teachers joined by ``+`` (``teacher-dense``, ``teacher-sparse``,
  ``teacher-dense+sparse``: the paper's heterogeneous ensemble, ``teacher-dense+bm25``), equal weights,
  default models (all-MiniLM-L6-v2, SPLADE-tiny), at the base config's λ and query weighting;
- ``teacher-ensemble`` — the base config's own teachers.

A variant whose effective config equals a finished one's (e.g. ``teacher-ensemble`` and
``idf-l<base λ>``) is not trained again: its row says which run it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

import yaml
from transformers import AutoTokenizer

from idfsplade.atomic import atomic_write_json, atomic_write_text
from idfsplade.data import BeirDataset
from idfsplade.evaluate import ResultRow, paired_t_test, read_trec_run
from idfsplade.idf import IdfTable
from idfsplade.index import InvertedIndex
from idfsplade.model import QueryEncoder, resolve_model
from idfsplade.pipeline import run_and_score
from idfsplade.search import InferenceFreeRetriever
from idfsplade.train import load_config, train
from idfsplade.train.experiment import evaluate_baselines, evaluate_student
from idfsplade.train.student import binary_weights

DEFAULT_VARIANTS = ["binary-l1e-4", "idf-l1e-4", "teacher-dense", "teacher-sparse", "teacher-dense+sparse",
                    "teacher-ensemble"]


def overrides_for(name: str) -> dict:
    """Config overrides of a variant name."""
    if match := re.fullmatch(r"(binary|idf)-l([0-9.e+-]+)", name):
        return {"student.query_weighting": match[1], "loss.flops_weight": float(match[2])}
    if name == "teacher-ensemble":
        return {}
    if match := re.fullmatch(r"teacher-((dense|bm25|sparse)(\+(dense|bm25|sparse))*)", name):
        return {"teachers.members": [{"kind": kind} for kind in match[1].split("+")]}
    raise SystemExit(f"unknown variant {name!r}")


def run_variant(config_path: Path, name: str, base: dict, out: Path, split: str) -> dict:
    """Train and evaluate one variant, or reuse a finished run with the same effective config.

    ``teacher-ensemble`` at λ is the same run as ``idf-l<λ>`` when the base config's teachers are the
    ensemble: it is trained once and reported under both names.
    """
    folder = out / name
    result_path = folder / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    overrides = {**base, **overrides_for(name)}  # the variant's own win over the base's
    config = load_config(config_path, overrides)
    for other in sorted(out.glob("*/result.json")):
        done = json.loads(other.read_text())
        if load_config(config_path, done["overrides"]) == config:
            result = {**done, "variant": name, "same_run_as": done.get("same_run_as", done["variant"])}
            atomic_write_json(result_path, result)
            return result
    config = dataclasses.replace(config, output_dir=str(folder))
    start = time.time()
    model_dir = train(config)
    train_s = time.time() - start
    row = evaluate_student(model_dir, BeirDataset(config.data.dataset), split, folder / "eval", name)
    result = {"variant": name, "overrides": overrides,
              "query_weighting": config.student.query_weighting, "flops_weight": config.loss.flops_weight,
              "teachers": "+".join(m.kind for m in config.teachers.members),
              "nDCG@10": row.metrics["nDCG@10"], "Recall@100": row.metrics["Recall@100"],
              "MRR@10": row.metrics["MRR@10"],
              "doc_active_dims": row.doc_active_dims, "query_active_dims": row.query_active_dims,
              "flops": row.flops, "train_seconds": round(train_s)}
    atomic_write_json(result_path, result)
    return result


def untrained_binary_row(dataset: BeirDataset, split: str, base_model: str, cache: Path,
                         idf_row: ResultRow) -> ResultRow:
    """The untrained model queried with a binary BoW: where the ``binary-*`` variants start from.

    Same cached index as the idf row (same documents, same query tokens, so the same dims and
    FLOPS); only the query weights differ.
    """
    (idf_path,) = cache.glob("*-corpus/idf.json")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(base_model))
    weights = binary_weights(IdfTable.load(idf_path, tokenizer)).weights
    name = f"{Path(base_model).name}-untrained-binary"
    retriever = InferenceFreeRetriever(QueryEncoder(tokenizer, weights), InvertedIndex.load(idf_path.parent / "index"),
                                       name=name)
    queries, qrels = dataset.split_queries(split)
    _, row = run_and_score(retriever, dataset, queries, qrels, cache, k=100)
    row.retriever = f"{Path(base_model).name} untrained, binary query"
    row.query_active_dims, row.doc_active_dims, row.flops = (idf_row.query_active_dims, idf_row.doc_active_dims,
                                                              idf_row.flops)
    return row


def render(results: list[dict], baseline: list) -> str:
    """Markdown table: the untrained model and BM25 first, then every variant."""
    lines = ["| variant | query | λ | teachers | nDCG@10 | Recall@100 | MRR@10 | q dims | d dims | FLOPS | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in baseline:
        dims = (f"{r.query_active_dims:.1f} | {r.doc_active_dims:.1f} | {r.flops:.3f}" if r.flops is not None
                else "— | — | —")
        lines.append(f"| {r.retriever} | — | — | — | {r.metrics['nDCG@10']:.4f} | {r.metrics['Recall@100']:.4f} | "
                     f"{r.metrics['MRR@10']:.4f} | {dims} | — |")
    for r in results:
        same = f" (= {r['same_run_as']})" if "same_run_as" in r else ""
        lines.append(f"| `{r['variant']}`{same} | {r['query_weighting']} | {r['flops_weight']:g} | {r['teachers']} "
                     f"| {r['nDCG@10']:.4f} | {r['Recall@100']:.4f} | {r['MRR@10']:.4f} "
                     f"| {r['query_active_dims']:.1f} | {r['doc_active_dims']:.1f} | {r['flops']:.3f} "
                     f"| {r['train_seconds']} |")
    return "\n".join(lines) + "\n"


def run_file(out: Path, name: str, baseline_cache: Path) -> Path:
    """The TREC run of a variant (of the run it reuses), or of a baseline: ``bm25``, ``untrained``,
    ``untrained-binary``."""
    if name == "bm25":
        return baseline_cache / "runs" / "bm25.trec"
    if name == "untrained":
        (path,) = baseline_cache.glob("*-corpus/runs/*.trec")
        return path
    if name == "untrained-binary":
        (path,) = baseline_cache.glob("runs/*-untrained-binary.trec")
        return path
    result = json.loads((out / name / "result.json").read_text())
    (path,) = (out / result.get("same_run_as", name) / "eval").glob("*/runs/*.trec")
    return path


def render_pairs(pairs: list[tuple[str, str]], out: Path, qrels: dict, baseline_cache: Path) -> str:
    """Markdown table of B − A in nDCG@10 per pair, with wins/losses over queries and the paired t-test."""
    lines = ["| A | B | nDCG@10 A | nDCG@10 B | Δ (B − A) | B wins / loses | p (paired t) |",
             "|---|---|---|---|---|---|---|"]
    for a, b in pairs:
        c = paired_t_test(qrels, read_trec_run(run_file(out, a, baseline_cache)),
                          read_trec_run(run_file(out, b, baseline_cache)))
        lines.append(f"| `{a}` | `{b}` | {c.mean_a:.4f} | {c.mean_b:.4f} | {c.delta:+.4f} | {c.wins} / {c.losses} "
                     f"| {c.p_value:.3g} |")
    return "\n".join(lines) + "\n"


def write_section(doc: Path, marker: str, content: str) -> None:
    """Replace what stands between ``<!-- marker -->`` and ``<!-- /marker -->`` in ``doc``."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if f"<!-- {marker} -->" not in text:
        text += f"\n<!-- {marker} -->\n<!-- /{marker} -->\n"
    new = re.sub(rf"<!-- {marker} -->.*<!-- /{marker} -->",
                 lambda _: f"<!-- {marker} -->\n{content}<!-- /{marker} -->", text, flags=re.S)
    atomic_write_text(doc, new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/scifact-splade-tiny.yaml"))
    parser.add_argument("--variant", action="append", help="variant name (repeatable); default: all")
    parser.add_argument("--set", action="append", default=[], help="base override key=value for every variant")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--doc", type=Path, default=Path("docs/ablation.md"))
    parser.add_argument("--pair", action="append", default=[], metavar="A,B",
                        help="compare two finished variants (or bm25 / untrained) per query: Δ nDCG@10, "
                             "paired t-test; repeatable")
    parser.add_argument("--no-table", action="store_true",
                        help="only train/evaluate the variants (parallel invocations); a last call writes the table")
    args = parser.parse_args()
    base = {}
    for pair in args.set:
        key, _, value = pair.partition("=")
        base[key] = yaml.safe_load(value)
    for name in args.variant or DEFAULT_VARIANTS:
        run_variant(args.config, name, base, args.out, args.split)
    if args.no_table:
        return
    # every finished variant of this folder, also those of earlier invocations
    results = [json.loads(p.read_text()) for p in args.out.glob("*/result.json")]
    results.sort(key=lambda r: (r["variant"].startswith("teacher-"), r["query_weighting"], r["flops_weight"],
                                r["variant"]))
    config = load_config(args.config, base)
    dataset = BeirDataset(config.data.dataset)
    baseline_cache = Path("runs/cache/eval") / dataset.name
    baseline = evaluate_baselines(dataset, args.split, config.student.model, baseline_cache)
    baseline.append(untrained_binary_row(dataset, args.split, config.student.model, baseline_cache, baseline[-1]))
    atomic_write_json(args.out / "ablation.json", results)
    table = render(results, baseline)
    write_section(args.doc, "table", table)
    print(table)
    if args.pair:
        _, qrels = dataset.split_queries(args.split)
        pairs = render_pairs([tuple(p.split(",", 1)) for p in args.pair], args.out, qrels, baseline_cache)
        write_section(args.doc, "pairs", pairs)
        print(pairs)


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
