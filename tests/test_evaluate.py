"""Metrics by hand (trec_eval's linear-gain nDCG), empty rankings count as 0, TREC run files."""

from __future__ import annotations

import math

import numpy as np

import pytest

from idfsplade.errors import InputError
from idfsplade.evaluate import ResultRow, evaluate_run, read_trec_run, render_markdown, write_trec_run


def test_metrics_by_hand_with_identical_query_and_doc_id():
    qrels = {"1": {"1": 1, "d2": 2}, "2": {"d9": 1}}
    run = {"1": {"d2": 3.0, "x": 2.0, "1": 1.0}}  # query 2 retrieved nothing
    dcg = 2 / math.log2(2) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    metrics = evaluate_run(qrels, run)
    assert metrics["nDCG@10"] == pytest.approx((dcg / idcg + 0.0) / 2, abs=1e-6)
    assert metrics["MRR@10"] == pytest.approx(0.5)
    assert metrics["Recall@100"] == pytest.approx(0.5)


def test_trec_run_round_trip(tmp_path):
    run = {"q1": {"a": 1.5, "b": 2.5}, "q2": {"c": 0.1}}
    write_trec_run(tmp_path / "run.trec", run, tag="t")
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 b 1 2.500000 t" and lines[1] == "q1 Q0 a 2 1.500000 t"
    assert read_trec_run(tmp_path / "run.trec") == run


def test_bad_trec_line(tmp_path):
    (tmp_path / "run.trec").write_text("q1 Q0 a 1 1.0 t\nq1 Q0 b 2 high t\n")
    with pytest.raises(InputError, match=r"run.trec, line 2, field 'score'"):
        read_trec_run(tmp_path / "run.trec")


def test_markdown_table():
    rows = [ResultRow("scifact", "bm25", {"nDCG@10": 0.6761}),
            ResultRow("scifact", "splade", {"nDCG@10": 0.65}, 9.5, 200.25, 1.5)]
    md = render_markdown(rows).splitlines()
    assert md[0] == "| dataset | retriever | nDCG@10 | q dims | d dims | FLOPS |"
    assert md[2] == "| scifact | bm25 | 0.6761 | — | — | — |"
    assert md[3] == "| scifact | splade | 0.6500 | 9.5 | 200.2 | 1.500 |"


def test_paired_t_test_by_hand():
    from scipy import stats

    from idfsplade.evaluate import paired_t_test

    qrels = {q: {"rel": 1} for q in ("1", "2", "3", "4")}
    top = {"rel": 2.0, "x": 1.0}      # relevant at rank 1: nDCG@10 = 1
    second = {"x": 2.0, "rel": 1.0}   # relevant at rank 2: nDCG@10 = 1 / log2(3)
    run_a = {"1": second, "2": second, "3": second, "4": top}
    run_b = {"1": top, "2": top, "3": second}  # query 4 missing from B: it scores 0
    cmp = paired_t_test(qrels, run_a, run_b)
    g = 1 / np.log2(3)
    diffs = np.array([1 - g, 1 - g, 0.0, -1.0])
    t = diffs.mean() / (diffs.std(ddof=1) / 2)
    assert cmp.mean_a == pytest.approx((3 * g + 1) / 4) and cmp.mean_b == pytest.approx((2 + g) / 4)
    assert cmp.delta == pytest.approx(diffs.mean())
    assert (cmp.wins, cmp.losses) == (2, 1)
    assert cmp.p_value == pytest.approx(2 * stats.t.sf(abs(t), df=3))
    assert paired_t_test(qrels, run_a, run_a).p_value == 1.0


def test_written_ranks_follow_the_order_trec_eval_scores(tmp_path):
    """Ties: the rank column is the order pytrec_eval evaluates in (score desc, doc id desc)."""
    import ir_measures

    run = {"q": {"a": 1.0, "b": 1.0, "c": 2.0, "d": 1.0}}
    write_trec_run(tmp_path / "r.trec", run, tag="t")
    ranked = [line.split()[2] for line in (tmp_path / "r.trec").read_text().splitlines()]
    assert ranked == ["c", "d", "b", "a"]
    for position, doc in enumerate(ranked, 1):  # pytrec_eval puts each doc at the written rank
        rr = next(ir_measures.iter_calc([ir_measures.RR], {"q": {doc: 1}}, read_trec_run(tmp_path / "r.trec")))
        assert rr.value == pytest.approx(1 / position)


def test_a_query_without_results_still_counts_when_the_file_is_rescored(tmp_path):
    qrels = {"1": {"d1": 1}, "2": {"d2": 1}}
    run = {"1": {"d1": 3.0}, "2": {}}
    write_trec_run(tmp_path / "r.trec", run, tag="t")
    reread = read_trec_run(tmp_path / "r.trec")
    assert "2" not in reread  # the format cannot hold an empty ranking...
    assert evaluate_run(qrels, reread)["nDCG@10"] == evaluate_run(qrels, run)["nDCG@10"] == pytest.approx(0.5)


def test_k_below_the_deepest_measure_is_refused(adi_path, tmp_path):
    from idfsplade.data import BeirDataset
    from idfsplade.errors import InputError
    from idfsplade.pipeline import evaluate_dataset

    with pytest.raises(InputError, match="k=50 would truncate the @100 measures"):
        evaluate_dataset(BeirDataset(adi_path), "test", tmp_path, [], k=50)


def test_fractional_relevance_grade_is_an_error_not_floored(tmp_path):
    from idfsplade.data import load_qrels
    from idfsplade.errors import InputError

    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0.5\n")
    with pytest.raises(InputError, match=r"test.tsv, line 3, field 'score': relevance grade '0.5'"):
        load_qrels(path)
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2.0\n")
    assert load_qrels(path) == {"q1": {"d1": 2}}
