"""Report helpers of the main job: runs from score matrices, the nDCG-vs-FLOPS plot, the CLI overrides."""

from __future__ import annotations

import numpy as np
import pytest

from idfsplade.errors import InputError
from idfsplade.evaluate import ResultRow
from idfsplade.train.experiment import plot_ndcg_vs_flops, top_k_run


def test_top_k_run_ranks_each_query():
    scores = np.array([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0]])
    run = top_k_run(scores, ["q1", "q2"], ["a", "b", "c"], k=2)
    assert list(run["q1"]) == ["b", "c"] and list(run["q2"]) == ["a", "c"]
    assert run["q2"]["a"] == pytest.approx(3.0)


def test_plot_is_written(tmp_path):
    rows = [ResultRow("scifact", "bm25", {"nDCG@10": 0.67}),
            ResultRow("scifact", "untrained", {"nDCG@10": 0.65}, 10.0, 248.0, 1.2),
            ResultRow("scifact", "student", {"nDCG@10": 0.69}, 10.0, 200.0, 0.9)]
    plot_ndcg_vs_flops(rows, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_overrides_parse_yaml_values():
    from idfsplade.train.config import parse_overrides

    assert parse_overrides(["loss.flops_weight=0.0001", "teachers.members=[{kind: bm25}]"]) == {
        "loss.flops_weight": 1e-4, "teachers.members": [{"kind": "bm25"}]}
    with pytest.raises(InputError, match="--set"):
        parse_overrides(["loss.flops_weight"])


@pytest.mark.slow  # a 4-step training run and three encodings of ADI: ~40 s on 2 quiet cores
def test_main_job_end_to_end_on_adi(tmp_path, adi_path, adi_reference):
    """``run_experiment``: train → baselines → teachers → student → report, with values checked."""
    import json

    from idfsplade.data import BeirDataset, document_text
    from idfsplade.evaluate import evaluate_run
    from idfsplade.search import BM25Retriever
    from idfsplade.train import load_config
    from idfsplade.train.experiment import run_experiment

    path = tmp_path / "run.yaml"
    path.write_text(f"""
output_dir: {tmp_path / 'run'}
seed: 3
student: {{model: splade-tiny, max_seq_length: 32}}
data: {{dataset: {adi_path}, split: test, negatives: 2, cache_dir: {tmp_path / 'data'}}}
teachers: {{members: [{{kind: bm25}}, {{kind: sparse}}], scale: 30, cache_dir: {tmp_path / 'teachers'}}}
loss: {{flops_weight: 0.0, student_temperature: 3.0}}
training: {{max_steps: 4, batch_size: 2, save_steps: 4, logging_steps: 1, torch_threads: 2, learning_rate: 1.0e-4}}
evaluation: {{dataset: null}}
""")
    rows = {r.retriever: r for r in run_experiment(load_config(path), baseline_cache=tmp_path / "eval")}
    names = list(rows)
    assert names == ["bm25", "splade-tiny before training, idf=corpus", "teacher BM25 (stemmed)",
                     "teacher sparse:splade-tiny", "teacher ensemble (min-max mean)", "student (run)",
                     "hybrid bm25-stem+student (run) (min_max w=0.5)"]
    # the baselines equal independent computations (tests/reference.py), not earlier pipeline output
    assert rows["bm25"].metrics["nDCG@10"] == pytest.approx(adi_reference["bm25"], abs=1e-6)
    assert rows["splade-tiny before training, idf=corpus"].metrics["nDCG@10"] == pytest.approx(
        adi_reference["splade-tiny"], abs=1e-4)
    # the BM25 teacher scores the whole corpus: it equals a stemmed BM25Retriever run
    ds = BeirDataset(adi_path)
    docs = list(ds.iter_corpus())
    queries, qrels = ds.split_queries("test")
    stemmed = BM25Retriever([d.id for d in docs], [document_text(d) for d in docs], stemmer="english")
    expected = evaluate_run(qrels, stemmed.search_many(queries, k=100))["nDCG@10"]
    teacher_bm25 = rows["teacher BM25 (stemmed)"]
    assert teacher_bm25.metrics["nDCG@10"] == pytest.approx(expected, abs=1e-6)
    # the student is a trained model: same query side, different document vectors
    student, untrained = rows["student (run)"], rows["splade-tiny before training, idf=corpus"]
    assert student.query_active_dims == pytest.approx(untrained.query_active_dims)
    assert student.doc_active_dims != pytest.approx(untrained.doc_active_dims, abs=1e-3)
    report = tmp_path / "run" / "report"
    saved = json.loads((report / "results.json").read_text())
    assert [r["retriever"] for r in saved] == list(rows)
    timings = json.loads((report / "timings.json").read_text())
    stages = [k for k in timings if k != "total"]
    assert stages[:3] == ["IDF", "training data", "teacher vectors (bm25, sparse)"]
    assert stages[-1] == "evaluate the student" and timings["total"] == pytest.approx(
        sum(timings[s] for s in stages), abs=0.1 * len(stages))
    assert (report / "ndcg_vs_flops.png").read_bytes()[:4] == b"\x89PNG"
