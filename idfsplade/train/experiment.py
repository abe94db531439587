"""The main job: train, then evaluate the student beside its teachers, BM25 and the untrained model.

One call of :func:`run_experiment` does IDF → training data → teacher vectors → training (resumable)
→ index → evaluation on the full split, and writes a report folder: ``results.md`` / ``results.json``
(nDCG@10, Recall@100, MRR@10, active dims, FLOPS), ``timings.json`` and ``ndcg_vs_flops.png``.

Teachers are evaluated from the vectors cached for training (the pool is the whole corpus), so
they cost one query encoding each. The untrained inference-free baseline and BM25 are cached in a
folder shared by all experiments on the dataset (``runs/cache/eval/<dataset>``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from idfsplade.atomic import atomic_dir, atomic_open, atomic_write_json, atomic_write_text
from idfsplade.data import BeirDataset
from idfsplade.evaluate import ResultRow, evaluate_run, render_markdown, write_trec_run
from idfsplade.pipeline import SparseModelSpec, evaluate_dataset
from idfsplade.search.hybrid import HybridSpec
from idfsplade.search.retriever import Run
from idfsplade.train.config import RunConfig
from idfsplade.train.ensemble import ensemble_targets
from idfsplade.train.scorer import EnsembleScorer
from idfsplade.train.stages import StageTimer
from idfsplade.train.teachers import dot_scores
from idfsplade.train.trainer import build_teachers, load_examples, train


def top_k_run(scores: np.ndarray, qids: list[str], doc_ids: list[str], k: int = 100) -> Run:
    """A run from a full ``queries × documents`` score matrix."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)}


def evaluate_teachers(config: RunConfig, dataset: BeirDataset, split: str, work: Path) -> list[ResultRow]:
    """Each teacher, and their min-max ensemble (the distillation target), as full-corpus retrievers."""
    examples = load_examples(config)
    teachers = build_teachers(config, examples)
    scorer = EnsembleScorer.build(examples, teachers, config.teachers.scale, Path(config.teachers.cache_dir))
    corpus_ids = set(dataset.doc_ids())
    queries, qrels = dataset.split_queries(split, doc_ids=corpus_ids)
    qids = list(queries)
    # the corpus only: weak (pseudo-query) data adds its cut-down positives to the pool, not documents
    doc_ids = [d for d in examples.passages if d in corpus_ids]
    per_teacher, rows = [], []
    for (teacher, _), member in zip(teachers, scorer.members):
        scores = dot_scores(teacher.encode_queries([queries[q] for q in qids]), member.passages.get(doc_ids))
        per_teacher.append(scores)
        label = getattr(teacher, "label", teacher.name)  # a human label where the cache key is not one
        rows.append(_score_run(dataset, f"teacher {label}", top_k_run(scores, qids, doc_ids), qrels, work))
    if len(per_teacher) > 1:
        mixed = ensemble_targets(per_teacher, [m.weight for m in scorer.members], 1.0)
        rows.append(_score_run(dataset, "teacher ensemble (min-max mean)", top_k_run(mixed, qids, doc_ids),
                               qrels, work))
    return rows


def _score_run(dataset: BeirDataset, name: str, run: Run, qrels: dict, work: Path) -> ResultRow:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")  # a file name, and a TREC tag (no spaces)
    write_trec_run(work / "runs" / f"{stem}.trec", run, tag=stem)
    return ResultRow(dataset.name, name, evaluate_run(qrels, run))


def evaluate_student(model_dir: Path, dataset: BeirDataset, split: str, work: Path, name: str) -> ResultRow:
    """The trained model on the full split, with its own query weights (idf.json in its route)."""
    return evaluate_student_rows(model_dir, dataset, split, work, name)[0]


def evaluate_student_rows(model_dir: Path, dataset: BeirDataset, split: str, work: Path, name: str,
                          hybrid: HybridSpec | None = None) -> list[ResultRow]:
    """:func:`evaluate_student`'s row and, with ``hybrid``, the student fused with BM25 (the row of
    ``evaluate --hybrid``, named after the student)."""
    rows = evaluate_dataset(dataset, split, work, [SparseModelSpec(model=str(model_dir), idf="model")], bm25=False,
                            hybrid=hybrid)
    rows[0].retriever = name
    if hybrid is not None:
        rows[1].retriever = hybrid.row_name(name)
    return rows


def evaluate_on_split(config: RunConfig, model_dir: Path, dataset: BeirDataset, split: str, timer: StageTimer,
                      teachers: bool = True, hybrid: bool = True,
                      baseline_cache: Path = Path("runs/cache/eval")) -> list[ResultRow]:
    """The report's rows on a judged split: BM25 and the untrained model (cached under
    ``baseline_cache/<dataset>``), the teachers, the student and (``hybrid``) the student fused with
    stemmed BM25 as ``search --hybrid`` does. Shared by ``experiment`` and ``adapt``."""
    work = Path(config.output_dir)
    with timer.stage("evaluate BM25 and the untrained model"):
        rows = evaluate_baselines(dataset, split, config.student.model, baseline_cache / dataset.name)
    if teachers:
        with timer.stage("evaluate the teachers"):
            rows += evaluate_teachers(config, dataset, split, work / "eval")
    with timer.stage("evaluate the student"):
        rows += evaluate_student_rows(model_dir, dataset, split, work / "eval", f"student ({work.name})",
                                      HybridSpec() if hybrid else None)
    return rows


def evaluate_baselines(dataset: BeirDataset, split: str, base_model: str, cache: Path) -> list[ResultRow]:
    """BM25 (plain, as `idfsplade evaluate`) and the untrained model, inference-free with corpus IDF (cached across runs)."""
    rows = evaluate_dataset(dataset, split, cache, [SparseModelSpec(model=base_model, idf="corpus")], bm25=True)
    rows[-1].retriever = f"{Path(base_model).name} before training, idf=corpus"
    return rows


def plot_ndcg_vs_flops(rows: list[ResultRow], path: Path) -> None:
    """Scatter of nDCG@10 against FLOPS for the rows that have FLOPS (the inference-free models)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.flops is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in points:
        ax.scatter(r.flops, r.metrics["nDCG@10"])
        ax.annotate(r.retriever, (r.flops, r.metrics["nDCG@10"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    for r in rows:
        if r.flops is None:
            ax.axhline(r.metrics["nDCG@10"], linestyle=":", linewidth=0.8, color="gray")
            ax.annotate(r.retriever, (ax.get_xlim()[0], r.metrics["nDCG@10"]), fontsize=6, color="gray")
    ax.set_xlabel("FLOPS (expected postings touched per query-document pair)")
    ax.set_ylabel("nDCG@10")
    ax.set_title("nDCG@10 against FLOPS (dotted: models without FLOPS)")
    fig.tight_layout()
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, dpi=120, format="png")
    finally:
        plt.close(fig)


def write_report(report: Path, rows: list[ResultRow], timer: StageTimer | None, note: str = "",
                 plot: bool = True) -> None:
    """``report/``: ``results.json``, ``results.md`` (``note`` first), ``timings.json`` and (``plot``)
    ``ndcg_vs_flops.png``, written as one folder (:func:`~idfsplade.atomic.atomic_dir`): a refused write
    leaves the previous report whole, never a mix of two runs' files."""
    with atomic_dir(report) as tmp:
        atomic_write_json(tmp / "results.json", [r.as_dict() for r in rows])
        atomic_write_text(tmp / "results.md", note + render_markdown(rows))
        if plot:
            plot_ndcg_vs_flops(rows, tmp / "ndcg_vs_flops.png")
        if timer is not None:
            atomic_write_json(tmp / "timings.json", timer.as_dict())


def run_experiment(config: RunConfig, split: str = "test", teachers: bool = True, hybrid: bool = True,
                   baseline_cache: Path = Path("runs/cache/eval")) -> list[ResultRow]:
    """Train (or resume) and evaluate; writes ``<output_dir>/report/``. Returns the table rows.

    The baselines (BM25, the untrained model) do not depend on the run: they are cached under
    ``baseline_cache/<dataset>`` and shared by every experiment. ``report/timings.json`` has the
    seconds of every stage, so the main job's time budget can be checked.
    """
    timer = StageTimer()
    model_dir = train(config, timer)
    work = Path(config.output_dir)
    dataset = BeirDataset(config.data.dataset)
    rows = evaluate_on_split(config, model_dir, dataset, split, timer, teachers, hybrid, baseline_cache)
    write_report(work / "report", rows, timer)
    return rows
