"""Training step time: the full vocabulary head against the query-vocabulary head.

One step = loss forward + backward + AdamW update of the packaged SPLADE-tiny, on the shipped config's
batch shape: 2 SciFact train queries × 8 passages (1 positive + 7 BM25 negatives) truncated at 128
tokens, 2 torch threads. Variants, interleaved round by round so machine noise hits all alike:

- ``full``: sentence-transformers' ``SpladeLoss`` path (every column), λ = 0 — the baseline;
- ``query``: logits only at the batch's query columns, λ = 0 (exact, tests/test_query_head.py);
- ``sample`` at λ > 0: query and document-token columns + 1,024 sampled ones (unbiased FLOPS);
- ``periodic`` at λ > 0: the full head every 10th step (mean over 10 consecutive steps).

    python benchmarks/training_speed.py [--rounds 7] [--out benchmarks/results/training_speed.json]

Prints a table and writes JSON with ``full_step_s``, ``query_head_step_s``, ``speedup`` (median ratio
full / query over rounds) and the λ > 0 variants.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


class _UniformTargets:
    def __init__(self, n_queries: int, n_columns: int) -> None:
        self.matrix = np.random.default_rng(0).uniform(0, 30, size=(n_queries, n_columns))

    def targets(self, indices, scope):
        return self.matrix


def _batch(dataset: Path, n_queries: int, n_passages: int):
    from idfsplade.data import BeirDataset, document_text

    ds = BeirDataset(dataset)
    queries, qrels = ds.split_queries("train")
    docs = {d.id: document_text(d) for d in ds.iter_corpus()}
    qids = list(queries)[:n_queries]
    doc_ids = list(docs)
    rng = np.random.default_rng(0)
    passages = [[docs[next(iter(qrels[q]))]] + [docs[doc_ids[i]] for i in rng.choice(len(doc_ids), n_passages - 1)]
                for q in qids]
    return [queries[q] for q in qids], passages


def _features(model, queries, passages):
    columns = [dict(model.preprocess(queries, task="query"), task="query")]
    for c in range(len(passages[0])):
        columns.append(dict(model.preprocess([p[c] for p in passages], task="document"), task="document"))
    return columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(REPO / "datasets" / "scifact"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flops-weight", type=float, default=1e-3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "training_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from idfsplade.data import BeirDataset
    from idfsplade.idf import IdfTable
    from idfsplade.idf.cache import corpus_idf
    from idfsplade.model import resolve_model
    from idfsplade.model.inference_free import load_tokenizer
    from idfsplade.train.config import LossConfig
    from idfsplade.train.losses import build_loss
    from idfsplade.train.student import build_student

    model_path = resolve_model("splade-tiny")
    idf: IdfTable = corpus_idf(BeirDataset(args.dataset), load_tokenizer(model_path),
                               REPO / "runs" / "bench" / "scifact-idf.json")
    torch.manual_seed(0)
    student = build_student(model_path, idf, max_seq_length=128)
    student.train()
    # The trainer's optimizer: HF's default `adamw_torch_fused` (the unfused loop costs 0.66 s a step here).
    optimizer = torch.optim.AdamW(student.parameters(), lr=5e-5, weight_decay=0.01, fused=True)
    queries, passages = _batch(Path(args.dataset), 2, 8)
    features = _features(student, queries, passages)
    labels = torch.tensor([0, 1])
    variants = {
        "full": build_loss(student, _UniformTargets(2, 16), LossConfig(flops_weight=0.0, student_temperature=3.0,
                                                                       head="full")),
        "query": build_loss(student, _UniformTargets(2, 16), LossConfig(flops_weight=0.0, student_temperature=3.0,
                                                                        head="query")),
        "sample": build_loss(student, _UniformTargets(2, 16), LossConfig(flops_weight=args.flops_weight,
                                                                         student_temperature=3.0, head="sample")),
        "periodic": build_loss(student, _UniformTargets(2, 16), LossConfig(flops_weight=args.flops_weight,
                                                                           student_temperature=3.0, head="periodic",
                                                                           flops_full_every=10)),
    }
    steps_per_round = {"periodic": 10}

    def step(loss_fn) -> None:
        optimizer.zero_grad()
        sum(loss_fn([dict(f) for f in features], labels).values()).backward()
        optimizer.step()

    for loss_fn in variants.values():  # warm-up
        step(loss_fn)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, loss_fn in variants.items():
            n = steps_per_round.get(name, 1)
            start = time.perf_counter()
            for _ in range(n):
                step(loss_fn)
            times[name].append((time.perf_counter() - start) / n)
    median = {name: statistics.median(t) for name, t in times.items()}
    ratios = [f / q for f, q in zip(times["full"], times["query"])]
    result = {
        "batch": "2 queries x 8 passages x 128 tokens", "threads": args.threads, "rounds": args.rounds,
        "full_step_s": round(median["full"], 4), "query_head_step_s": round(median["query"], 4),
        "speedup": round(statistics.median(ratios), 2),
        "sample_step_s": round(median["sample"], 4), "periodic_step_s": round(median["periodic"], 4),
        "speedup_sample": round(statistics.median(f / s for f, s in zip(times["full"], times["sample"])), 2),
        "speedup_periodic": round(statistics.median(f / s for f, s in zip(times["full"], times["periodic"])), 2),
        "flops_weight_for_sample_and_periodic": args.flops_weight,
        "per_round_s": {k: [round(x, 4) for x in v] for k, v in times.items()},
    }
    print(f"{'head':<10} {'step s (median)':>16} {'speedup vs full':>16}")
    for name in variants:
        speed = "1.00" if name == "full" else f"{statistics.median(f / t for f, t in zip(times['full'], times[name])):.2f}"
        print(f"{name:<10} {median[name]:>16.4f} {speed:>16}")
    from idfsplade.atomic import atomic_write_json  # the benchmarks' one JSON writer

    atomic_write_json(args.out, result, indent=2)
    print(f"wrote {Path(args.out).relative_to(REPO) if Path(args.out).is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
