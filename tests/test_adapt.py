"""Label-free adaptation: the pseudo-query generators (never a substring of their positive passage),
the weak example builder on a corpus-only folder, the adapt config, and ``idfsplade adapt`` end to end
(corpus-only folder; and a full folder whose queries and qrels must not be read before training ends)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from idfsplade.data import BeirDataset, Document, document_text
from idfsplade.errors import InputError
from idfsplade.train.examples import (
    PSEUDO_QUERY_GENERATORS,
    WordIdf,
    build_weak,
    pseudo_queries,
    remove_text,
)

CRANFIELD_LIKE = Document(
    "7", "experimental investigation of the aerodynamics of a wing in a slipstream .",
    "experimental investigation of the aerodynamics of a wing in a slipstream . an experimental study of a wing "
    "in a propeller slipstream was made in order to determine the spanwise distribution of the lift increase . "
    "the results were intended in part as an evaluation basis for different theoretical treatments of this "
    "problem . the comparative span loading curves show that the propeller slipstream raises the lift .")


def test_remove_text_cuts_every_occurrence_case_insensitively():
    assert remove_text("A b  c. a B c. d", "a b c") == ". . d"
    assert remove_text("a a b b", "A B") == ""  # "a a b b" -> "a b" -> "": removal repeats until none is left
    assert remove_text("x y", "") == "x y"


def test_title_generator_removes_the_title_repeated_in_the_body():
    (name, query, passage), = pseudo_queries(CRANFIELD_LIKE, ["title"], np.random.default_rng(0))
    assert name == "title" and query == "experimental investigation of the aerodynamics of a wing in a slipstream ."
    assert passage.startswith("an experimental study of a wing in a propeller slipstream")  # body, title cut out
    assert query.lower() not in passage.lower()


def test_span_and_terms_generators():
    idf = WordIdf([document_text(CRANFIELD_LIKE), "a wing", "the lift of a wing"])
    rng = np.random.default_rng(1)
    for _ in range(20):
        (_, span, passage), = pseudo_queries(CRANFIELD_LIKE, ["span"], rng)
        assert 6 <= len(span.split()) <= 12 and span in " ".join(CRANFIELD_LIKE.text.split())
        assert span.lower() not in passage.lower()
        (_, terms, passage), = pseudo_queries(CRANFIELD_LIKE, ["terms"], rng, idf)
        words = terms.split()
        assert 2 <= len(words) <= 5 and len(set(words)) == len(words)
        assert not {"a", "the", "of", "in"} & set(words)  # stop words never
        # the terms come from one sentence, and that sentence is cut out of the passage
        sources = [s for s in CRANFIELD_LIKE.text.split(" . ") if set(words) <= set(s.split())]
        assert sources and all(s.lower() not in passage.lower() for s in sources)
    assert idf.idf["wing"] < idf.idf["lift"] < idf.idf["propeller"]  # in 3, 2 and 1 of the 3 texts


def test_a_document_that_fits_no_generator_gives_nothing():
    assert pseudo_queries(Document("1", "", "Too short."), list(PSEUDO_QUERY_GENERATORS),
                          np.random.default_rng(0)) == []


@pytest.mark.parametrize("corpus", ["adi", "cranfield"])
def test_no_pseudo_query_is_a_substring_of_its_positive(corpus, adi_path):
    docs = list(BeirDataset(adi_path.parent / corpus).iter_corpus())
    idf = WordIdf(document_text(d) for d in docs)
    rng = np.random.default_rng(0)
    counts = dict.fromkeys(PSEUDO_QUERY_GENERATORS, 0)
    for doc in docs:
        for generator in PSEUDO_QUERY_GENERATORS:
            for name, query, passage in pseudo_queries(doc, [generator], rng, idf):
                counts[name] += 1
                assert query and query.lower() not in passage.lower(), (doc.id, name)
                assert len(passage.split()) >= 8
    assert all(n > len(docs) / 2 for n in counts.values()), counts  # every generator applies to most documents


@pytest.fixture()
def corpus_only(adi_path, tmp_path):
    """ADI's corpus.jsonl alone in a folder: no queries, no qrels."""
    folder = tmp_path / "adi-corpus"
    folder.mkdir()
    shutil.copy(adi_path / "corpus.jsonl", folder / "corpus.jsonl")
    return folder


def test_weak_examples_from_a_corpus_only_folder(corpus_only, tmp_path):
    ds = BeirDataset(corpus_only)
    examples = build_weak(ds, tmp_path / "ex", n_negatives=3, max_pairs=30, seed=5,
                          generators=["title", "sentence", "span", "terms"])
    corpus = {d.id: document_text(d) for d in ds.iter_corpus()}
    assert len(examples) == 30 and len({e.qid for e in examples.examples}) == 30
    assert {e.qid.split("-")[1] for e in examples.examples} == {"title", "sentence", "span", "terms"}
    for e in examples.examples:
        generator, doc_id = e.qid.removeprefix("pq-").split("-", 1)
        assert e.candidates[0] == f"{doc_id}#pq-{generator}"
        assert all(c in corpus for c in e.candidates[1:]) and doc_id not in e.candidates  # source never negative
        assert len(set(e.candidates)) == 4
        assert e.query.lower() not in examples.passages[e.candidates[0]].lower()
    # the pool: every corpus document unchanged, plus the 30 positives
    assert {k: v for k, v in examples.passages.items() if k in corpus} == corpus
    assert len(examples.passages) == len(corpus) + 30
    again = build_weak(ds, tmp_path / "ex2", n_negatives=3, max_pairs=30, seed=5,
                       generators=["title", "sentence", "span", "terms"])
    assert [(e.qid, e.query, e.candidates) for e in again.examples] == [
        (e.qid, e.query, e.candidates) for e in examples.examples]  # deterministic
    with pytest.raises(InputError, match="pseudo-query generators must be among"):
        build_weak(ds, tmp_path / "ex3", generators=["question"])


def test_adapt_config(corpus_only, tmp_path):
    from idfsplade.train.adapt import adapt_config

    cfg = adapt_config(corpus_only, tmp_path / "run", model="splade-tiny", max_steps=7,
                       overrides={"data.pseudo_queries": ["span"]})
    assert cfg.data.dataset == str(corpus_only) and cfg.data.kind == "weak" and cfg.evaluation.dataset is None
    assert cfg.training.max_steps == 7 and cfg.data.pseudo_queries == ["span"] and cfg.student.idf == "corpus"
    assert cfg.teachers.cache_dir == str(tmp_path / "run" / "cache" / "teachers")
    assert [m.kind for m in cfg.teachers.members] == ["dense", "bm25"]
    assert adapt_config(corpus_only).output_dir == "runs/adapt/adi-corpus"
    with pytest.raises(InputError, match="evaluation.dataset must be null"):
        adapt_config(corpus_only, overrides={"evaluation.dataset": "datasets/scifact"})
    with pytest.raises(InputError, match=r"field 'data.pseudo_queries\[1\]': must be one of"):
        adapt_config(corpus_only, overrides={"data.pseudo_queries": ["span", "question"]})
    with pytest.raises(InputError, match="no corpus.jsonl"):
        adapt_config(tmp_path)


def _run_cli(monkeypatch, capsys, *args):
    from idfsplade.cli import main

    monkeypatch.setattr(sys, "argv", ["idfsplade", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


TINY = ["--max-steps", "4", "--set", "data.max_pairs=16", "--set", "data.negatives=2",
        "--set", "training.save_steps=2", "--set", "student.max_seq_length=32"]


@pytest.mark.slow  # 4 training steps on ADI's corpus, two encodings of ADI: ~1 min on 2 cores
def test_adapt_runs_on_a_folder_with_only_a_corpus(corpus_only, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # runs/cache/... of the defaults land in tmp
    out = tmp_path / "run"
    code, stdout, err = _run_cli(monkeypatch, capsys, "adapt", str(corpus_only), "--out", str(out), *TINY)
    assert code == 0, err
    assert (out / "model" / "idf.json").exists()
    rows = json.loads((out / "report" / "results.json").read_text())
    assert [r["retriever"] for r in rows] == ["idfsplade-tiny before training, idf=corpus", "student (run)"]
    assert all(r["metrics"] == {} and r["doc_active_dims"] > 50 and r["flops"] > 0 for r in rows)
    assert rows[0]["query_active_dims"] == pytest.approx(rows[1]["query_active_dims"])  # same IDF query side
    assert (out / "report" / "results.md").read_text().startswith("adi-corpus: no queries.jsonl + qrels/test.tsv")
    assert json.loads((out / "config.json").read_text())["data"]["kind"] == "weak"
    # the teacher cache, when there is one, is the run's own
    saved = json.loads((out / "config.json").read_text())["teachers"]
    assert saved["cache_dir"] == str(out / "cache" / "teachers")
    assert not saved["precompute"] or list((out / "cache" / "teachers").iterdir())
    # rerunning resumes: nothing is trained again, the same report comes back
    code, _, err = _run_cli(monkeypatch, capsys, "adapt", str(corpus_only), "--out", str(out), *TINY)
    assert code == 0, err
    assert json.loads((out / "report" / "results.json").read_text()) == rows


@pytest.mark.slow  # 4 training steps and the experiment report on ADI: ~1.5 min on 2 cores
def test_adapt_reads_queries_and_qrels_only_for_the_report(adi_path, tmp_path, monkeypatch, capsys):
    import idfsplade.data.beir as beir
    import idfsplade.train.trainer as trainer

    folder = tmp_path / "adi"
    shutil.copytree(adi_path, folder)
    reads, training = [], [False]
    for name in ("iter_queries", "load_qrels"):
        original = getattr(beir, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            reads.append((_name, training[0]))
            return _original(*args, **kwargs)

        monkeypatch.setattr(beir, name, spy)
    real_train = trainer.train

    def watched_train(*args, **kwargs):
        reads.append(("train", True))
        training[0] = True
        try:
            return real_train(*args, **kwargs)
        finally:
            training[0] = False

    monkeypatch.setattr(trainer, "train", watched_train)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code, _, err = _run_cli(monkeypatch, capsys, "adapt", str(folder), "--out", str(out), *TINY)
    assert code == 0, err
    assert reads[0] == ("train", True)  # training ran first (through the spy) ...
    assert len(reads) > 1 and not any(during for name, during in reads[1:])  # ... queries/qrels only after it
    rows = {r["retriever"]: r for r in json.loads((out / "report" / "results.json").read_text())}
    names = list(rows)
    assert names == ["bm25", "idfsplade-tiny before training, idf=corpus", "teacher dense:all-MiniLM-L6-v2",
                     "teacher BM25 (stemmed)",
                     "teacher ensemble (min-max mean)", "student (run)",
                     "hybrid bm25-stem+student (run) (min_max w=0.5)"]
    assert all(0.2 < r["metrics"]["nDCG@10"] < 0.7 for r in rows.values())
    assert (out / "report" / "ndcg_vs_flops.png").read_bytes()[:4] == b"\x89PNG"


def test_adapt_builds_only_the_pairs_its_steps_use(adi_path):
    from idfsplade.train.adapt import adapt_config

    cfg = adapt_config(adi_path, max_steps=20)
    assert cfg.data.max_pairs == 40  # 20 steps × 2 queries
    assert adapt_config(adi_path, max_steps=5000).data.max_pairs == 2000  # never more than the config's
    assert adapt_config(adi_path, max_steps=20, overrides={"data.max_pairs": 600}).data.max_pairs == 600
    # teacher vectors: a cache when training would encode more passages than ADI's 82 (20 × 2 × 8 = 320) ...
    assert cfg.teachers.precompute is True
    # ... else each batch's (4 × 2 × 8 = 64 < 82), unless the config says
    assert adapt_config(adi_path, max_steps=4).teachers.precompute is False
    assert adapt_config(adi_path, max_steps=4, overrides={"teachers.precompute": True}).teachers.precompute is True
