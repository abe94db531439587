"""Training data builders, teachers, the precomputed-vs-on-the-fly targets, and config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from idfsplade.data import BeirDataset, document_text
from idfsplade.errors import InputError
from idfsplade.train.config import load_config
from idfsplade.train.examples import ExampleSet, build_supervised, build_weak
from idfsplade.train.scorer import EnsembleScorer
from idfsplade.train.teachers import BM25Teacher, CachedVectors, DenseTeacher, dot_scores


@pytest.fixture(scope="module")
def adi_examples(adi_path, tmp_path_factory):
    return build_supervised(BeirDataset(adi_path), "test", tmp_path_factory.mktemp("ex"), n_negatives=3, seed=0)


def test_supervised_examples_have_positive_first_and_bm25_negatives(adi_examples, adi_path):
    qrels = BeirDataset(adi_path).qrels("test")
    assert len(adi_examples) == len(qrels)
    assert len(adi_examples.passages) == 82  # the whole pool is kept
    for e in adi_examples.examples:
        assert len(e.candidates) == 4 and len(set(e.candidates)) == 4
        assert qrels[e.qid][e.candidates[0]] > 0
        assert not any(qrels[e.qid].get(c, 0) > 0 for c in e.candidates[1:])


def test_builder_resumes_after_partial_chunk(adi_path, tmp_path):
    ds = BeirDataset(adi_path)
    full = build_supervised(ds, "test", tmp_path / "a", n_negatives=2, seed=0)
    # simulate a kill: only the first 5 records were written, plus a torn line
    folder = tmp_path / "b"
    folder.mkdir()
    lines = (tmp_path / "a" / "examples.jsonl").read_text().splitlines()
    (folder / "examples.jsonl.partial").write_text("\n".join(lines[:5]) + "\n" + lines[5][:10])
    resumed = build_supervised(ds, "test", folder, n_negatives=2, seed=0)
    assert [e.qid for e in resumed.examples][:5] == [e.qid for e in full.examples][:5]
    assert sorted(e.qid for e in resumed.examples) == sorted(e.qid for e in full.examples)
    assert not (folder / "examples.jsonl.partial").exists()


def test_weak_examples_from_unlabelled_corpus(adi_path, tmp_path):
    weak = build_weak(BeirDataset(adi_path), tmp_path, n_negatives=2, max_pairs=10)
    assert len(weak) == 10
    first = weak.examples[0]
    generator, doc_id = first.qid.removeprefix("pq-").split("-", 1)
    assert first.candidates[0] == f"{doc_id}#pq-{generator}" and doc_id not in first.candidates
    assert first.query.lower() not in weak.passages[first.candidates[0]].lower()  # the pseudo-query is cut out


def test_bad_examples_file_names_line_and_field(tmp_path):
    (tmp_path / "passages.jsonl").write_text('{"id": "d1", "text": "x"}\n{"id": "d2", "text": "y"}\n')
    (tmp_path / "examples.jsonl").write_text('{"qid": "q", "query": "x", "candidates": ["d1", "d2"]}\n'
                                             '{"qid": "q2", "candidates": ["d1"]}\n')
    with pytest.raises(InputError, match=r"examples.jsonl, line 2, field 'query'"):
        ExampleSet.load(tmp_path)


def test_bm25_teacher_matches_bm25s_scores(adi_path):
    from idfsplade.search import BM25Retriever

    docs = list(BeirDataset(adi_path).iter_corpus())
    texts = [document_text(d) for d in docs]
    teacher = BM25Teacher(texts)
    query = "computer information retrieval systems"
    scores = dot_scores(teacher.encode_queries([query]), teacher.encode_passages(texts))[0]
    hits = BM25Retriever([d.id for d in docs], texts, stemmer="english").search(query, k=5)
    by_id = dict(zip([d.id for d in docs], scores))
    np.testing.assert_allclose([by_id[i] for i in hits.ids], hits.scores, rtol=1e-5)


def test_precomputed_targets_equal_on_the_fly(adi_examples, tmp_path):
    teachers = [(DenseTeacher("all-MiniLM-L6-v2"), 1.0), (BM25Teacher(list(adi_examples.passages.values())), 2.0)]
    cached = EnsembleScorer.build(adi_examples, teachers, scale=30, cache_dir=tmp_path)
    fly = EnsembleScorer.build(adi_examples, teachers, scale=30, cache_dir=None)
    reloaded = EnsembleScorer.build(adi_examples, teachers, scale=30, cache_dir=tmp_path)  # from disk
    for scope, shape in (("in_batch", (3, 12)), ("own_list", (3, 4))):
        t_cached = cached.targets([0, 5, 2], scope)
        assert t_cached.shape == shape
        np.testing.assert_allclose(t_cached, fly.targets([0, 5, 2], scope), atol=1e-4)
        np.testing.assert_allclose(t_cached, reloaded.targets([0, 5, 2], scope), atol=0)
        assert t_cached.min() >= 0 and t_cached.max() <= 30 + 1e-5
    meta = json.loads((tmp_path / "dense-all-MiniLM-L6-v2" / "passages" / "meta.json").read_text())
    assert meta["n"] == 82 and not meta["sparse"]
    assert isinstance(reloaded.members[0].passages, CachedVectors)


def test_config_errors_name_line_and_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("loss:\n  flops_weight: 1e-4\n  flopz: 1\n")
    with pytest.raises(InputError, match=r"line 3, field 'loss.flopz'"):
        load_config(path)
    path.write_text("teachers:\n  members:\n    - {kind: dense}\n    - {kind: cross}\n")
    with pytest.raises(InputError, match=r"line 4, field 'teachers.members\[1\].kind'"):
        load_config(path)
    path.write_text("loss:\n  flops_weight: 1e-4\n")
    config = load_config(path, {"training.max_steps": 5})
    assert config.loss.flops_weight == pytest.approx(1e-4) and config.training.max_steps == 5


def test_training_pins_memory_only_for_a_gpu(tmp_path):
    # torch warns "'pin_memory' ... no accelerator is found" into `idfsplade train`'s output otherwise
    import torch

    from idfsplade.train.trainer import training_arguments

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "scifact-splade-tiny.yaml")
    args = training_arguments(config, tmp_path / "checkpoints", n_candidates=8)
    assert args.dataloader_pin_memory is torch.cuda.is_available()
