"""Label-free adaptation: ``idfsplade adapt CORPUS`` — train an inference-free document encoder for one
corpus from the corpus alone, then index it and report as ``idfsplade experiment`` does.

The training half reads ``corpus.jsonl`` and nothing else: pseudo-queries cut from the documents
(:func:`~idfsplade.train.examples.build_weak`: title, sentence, span, high-IDF terms; each removed from
its positive passage), negatives mined by stemmed BM25, targets from the teacher ensemble (stemmed
BM25 + all-MiniLM-L6-v2), the corpus's own IDF in the student and in the saved model. The config may
not turn on evaluation during training (it would read queries and qrels). Only after training, and
only when the folder has ``queries.jsonl`` and ``qrels/<split>.tsv``, the report evaluates BM25, the
untrained model, the teachers, the student and the student fused with stemmed BM25 on that split,
with the machinery of :mod:`idfsplade.train.experiment`; without them it reports what needs no
judgments: document and query active dimensions and FLOPS (over the training pseudo-queries).

Every stage resumes as in ``experiment``: the example builder, the teacher vectors (kept under
``<out>/cache/teachers``, never shared with other runs), the training checkpoints, the evaluation caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from idfsplade.data import BeirDataset
from idfsplade.errors import InputError
from idfsplade.evaluate import ResultRow
from idfsplade.train.config import RunConfig, load_config
from idfsplade.train.stages import StageTimer

DEFAULT_CONFIG = Path(__file__).with_name("adapt.yaml")


def adapt_config(corpus: str | Path, out: str | Path | None = None, model: str | None = None,
                 max_steps: int | None = None, overrides: dict[str, Any] | None = None,
                 config: str | Path | None = None) -> RunConfig:
    """The run config of ``idfsplade adapt``: ``config`` (default: the packaged ``adapt.yaml``) with
    ``data.dataset = corpus``, ``output_dir = out`` (default ``runs/adapt/<corpus folder name>``),
    ``--model``, ``--max-steps``, then ``overrides`` (``--set``) on top."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise InputError("not a folder: give the BEIR folder that holds corpus.jsonl", path=corpus)
    if not (corpus / "corpus.jsonl").is_file():
        raise InputError("no corpus.jsonl in this folder", path=corpus)
    out = Path(out) if out is not None else Path("runs") / "adapt" / corpus.name
    merged: dict[str, Any] = {"data.dataset": str(corpus), "output_dir": str(out),
                              "teachers.cache_dir": str(out / "cache" / "teachers")}
    if model:
        merged["student.model"] = model
    if max_steps is not None:
        merged["training.max_steps"] = max_steps
    merged.update(overrides or {})
    cfg = load_config(config or DEFAULT_CONFIG, merged)
    if "data.max_pairs" not in merged and cfg.training.max_steps > 0:
        # Build only the pseudo-queries the steps will use: with fewer candidates, fewer passages need
        # teacher vectors (the dense teacher dominated adapt's time), and none is built for nothing.
        needed = cfg.training.max_steps * cfg.training.batch_size * cfg.training.gradient_accumulation_steps
        if needed < cfg.data.max_pairs:
            cfg.data.max_pairs = needed
        if "teachers.precompute" not in merged:
            # Teacher vectors for every passage once (a cache), or for each batch's passages as it comes:
            # whichever encodes fewer texts. The targets are the same (tests/test_train_data.py).
            per_step = (cfg.training.batch_size * cfg.training.gradient_accumulation_steps
                        * (cfg.data.negatives + 1))
            with (corpus / "corpus.jsonl").open("rb") as f:
                n_docs = sum(1 for line in f if line.strip())
            cfg.teachers.precompute = n_docs <= cfg.training.max_steps * per_step
    if cfg.data.kind != "weak":
        raise InputError("adapt trains on pseudo-queries from the corpus alone: data.kind must be 'weak'",
                         field="data.kind")
    if cfg.evaluation.dataset is not None:
        raise InputError("adapt must not read queries or qrels while training: evaluation.dataset must be null",
                         field="evaluation.dataset")
    if cfg.student.idf != "corpus":
        raise InputError("adapt uses the corpus's own IDF: student.idf must be 'corpus'", field="student.idf")
    return cfg


def has_split(dataset: BeirDataset, split: str) -> bool:
    """Whether the folder has what a report on ``split`` needs (checked without reading either file)."""
    return dataset.queries_path.is_file() and dataset.qrels_path(split).is_file()


def sparsity_rows(config: RunConfig, model_dir: Path, dataset: BeirDataset, baseline_cache: Path
                  ) -> tuple[list[ResultRow], int]:
    """No judgments: active dims and FLOPS of the untrained model and the student on the corpus, with
    the training pseudo-queries as the query sample. Returns the rows and the number of queries."""
    from idfsplade.pipeline import SparseModelSpec, build_sparse_retriever
    from idfsplade.train.trainer import load_examples
    from idfsplade.vectors import sparsity_stats

    queries = list(load_examples(config).queries.values())
    work = Path(config.output_dir)
    models = [(SparseModelSpec(model=config.student.model, idf="corpus"), baseline_cache / dataset.name / "stats",
               f"{Path(config.student.model).name} before training, idf=corpus"),
              (SparseModelSpec(model=str(model_dir), idf="model"), work / "eval" / "stats", f"student ({work.name})")]
    rows = []
    for spec, folder, name in models:
        retriever, docs = build_sparse_retriever(spec, dataset, folder / spec.label, folder / "vectors" / spec.label)
        encoder = retriever.query_encoder
        stats = sparsity_stats(encoder.to_csr(encoder.encode_batch(queries)), docs)
        rows.append(ResultRow(dataset.name, name, {}, stats.query_active_dims, stats.doc_active_dims, stats.flops))
    return rows, len(queries)


def run_adapt(config: RunConfig, split: str = "test", teachers: bool = True, hybrid: bool = True,
              baseline_cache: Path = Path("runs/cache/eval")) -> list[ResultRow]:
    """Train (or resume) on the corpus alone, then write ``<output_dir>/report/`` (``results.md``,
    ``results.json``, ``timings.json`` and, when ``split`` is judged, ``ndcg_vs_flops.png``)."""
    from idfsplade.train.experiment import evaluate_on_split, write_report
    from idfsplade.train.trainer import train

    timer = StageTimer()
    model_dir = train(config, timer)
    work = Path(config.output_dir)
    dataset = BeirDataset(config.data.dataset)
    report = work / "report"
    if has_split(dataset, split):  # read only now, for the report
        rows = evaluate_on_split(config, model_dir, dataset, split, timer, teachers, hybrid, baseline_cache)
        note = f"{dataset.name}, split {split}: evaluated after training (training read only corpus.jsonl).\n\n"
        plot = True
    else:
        with timer.stage("sparsity statistics (nothing to evaluate)"):
            rows, n_queries = sparsity_rows(config, model_dir, dataset, baseline_cache)
        note = (f"{dataset.name}: no queries.jsonl + qrels/{split}.tsv, so nothing is evaluated. q dims and FLOPS "
                f"are over the {n_queries} training pseudo-queries; d dims over the corpus.\n\n")
        plot = False
    write_report(report, rows, timer, note, plot)
    return rows
