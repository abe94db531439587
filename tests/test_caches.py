"""Caches are keyed by content: a model retrained (or edited) into the same folder, a corpus edited in
place, or texts changed under the same ids are recomputed, never silently reused."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

from idfsplade.data import BeirDataset
from idfsplade.idf.cache import corpus_idf
from idfsplade.pipeline import SparseModelSpec, evaluate_dataset
from idfsplade.vectors import discard_stale_shards


def _perturb_in_place(folder) -> None:
    """Overwrite the model's weights in ``folder`` (as a retraining into the same folder would)."""
    import torch
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(folder)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    model.save_pretrained(folder)


def _ndcg(rows, label):
    (row,) = [r for r in rows if r.retriever.startswith(label)]
    return row.metrics["nDCG@10"]


def test_model_changed_in_place_is_re_encoded(adi_path, splade_tiny_path, tmp_path, capsys):
    model = tmp_path / "model-copy"
    shutil.copytree(splade_tiny_path, model)
    spec = SparseModelSpec(model=str(model), name="copy")
    dataset = BeirDataset(adi_path)
    before = _ndcg(evaluate_dataset(dataset, "test", tmp_path / "work", [spec], bm25=False), "copy")
    _perturb_in_place(model)
    again = _ndcg(evaluate_dataset(dataset, "test", tmp_path / "work", [spec], bm25=False), "copy")
    fresh = _ndcg(evaluate_dataset(dataset, "test", tmp_path / "fresh", [spec], bm25=False), "copy")
    assert again == pytest.approx(fresh, abs=1e-9)  # the same folder gives what a fresh folder gives
    assert abs(again - before) > 0.05  # and not the stale 0.4587 of the unperturbed copy
    assert "document vectors" in capsys.readouterr().err  # said in one line


def test_corpus_edited_in_place_recomputes_idf(adi_path, tokenizer, tmp_path):
    data = tmp_path / "adi"
    shutil.copytree(adi_path, data)
    out = tmp_path / "work" / "idf.json"
    first = corpus_idf(BeirDataset(data), tokenizer, out)
    np.testing.assert_allclose(corpus_idf(BeirDataset(data), tokenizer, out).weights, first.weights, atol=1e-6)
    truncating = copy.deepcopy(tokenizer)  # run-time truncation is not part of a tokenizer's identity:
    truncating.backend_tokenizer.enable_truncation(7)
    assert corpus_idf(BeirDataset(data), truncating, out).n_docs is None  # ...read back (idf.json has no N)
    lines = (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    (data / "corpus.jsonl").write_text("\n".join(lines[:40]) + "\n", encoding="utf-8")
    edited = corpus_idf(BeirDataset(data), tokenizer, out)
    assert edited.n_docs == 40  # recounted, not the 82-document table read back
    fresh = corpus_idf(BeirDataset(data), tokenizer, tmp_path / "fresh" / "idf.json")
    np.testing.assert_allclose(edited.weights, fresh.weights, atol=1e-6)  # idf.json keeps 6 decimals


def test_stale_shards_of_a_killed_run_are_dropped(tmp_path):
    out = tmp_path / "docs"
    shards = tmp_path / "docs.shards"
    discard_stale_shards(out, {"model": "a"})
    (shards / "shard-000000").mkdir()
    discard_stale_shards(out, {"model": "a"})  # same inputs: the finished shard is kept (resume)
    assert (shards / "shard-000000").exists()
    discard_stale_shards(out, {"model": "b"})  # other inputs: dropped
    assert not (shards / "shard-000000").exists()


class _CountingTeacher:
    name = "counting"
    fingerprint = "v1"

    def __init__(self):
        self.calls = 0

    def encode_queries(self, texts):
        self.calls += 1
        return np.array([[len(t)] for t in texts], dtype=np.float32)

    encode_passages = encode_queries


def test_teacher_cache_keyed_by_texts_and_weights(tmp_path):
    from idfsplade.train.teachers import CachedVectors

    teacher = _CountingTeacher()
    folder = tmp_path / "cache"
    CachedVectors.load_or_encode(teacher, {"a": "x", "b": "yy"}, "passage", folder)
    CachedVectors.load_or_encode(teacher, {"a": "x", "b": "yy"}, "passage", folder)
    assert teacher.calls == 1
    changed = CachedVectors.load_or_encode(teacher, {"a": "x", "b": "zzzz"}, "passage", folder)  # same ids
    assert teacher.calls == 2 and changed.get(["b"])[0, 0] == 4
    teacher.fingerprint = "v2"  # retrained teacher weights
    CachedVectors.load_or_encode(teacher, {"a": "x", "b": "zzzz"}, "passage", folder)
    assert teacher.calls == 3


def test_training_examples_rebuilt_when_the_corpus_changes_under_the_same_ids(adi_path, tmp_path):
    from idfsplade.train.examples import build_weak

    data = tmp_path / "adi"
    data.mkdir()
    shutil.copy(adi_path / "corpus.jsonl", data / "corpus.jsonl")
    folder = tmp_path / "examples"
    first = build_weak(BeirDataset(data), folder, n_negatives=2, max_pairs=10, seed=1)
    lines = (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    edited = [json.dumps({**json.loads(line), "text": json.loads(line)["text"] + " zeppelin"}) for line in lines]
    (data / "corpus.jsonl").write_text("\n".join(edited) + "\n", encoding="utf-8")
    second = build_weak(BeirDataset(data), folder, n_negatives=2, max_pairs=10, seed=1)
    assert [e.qid for e in second.examples] == [e.qid for e in first.examples]  # same ids...
    assert all(t.endswith("zeppelin") for pid, t in second.passages.items() if "#" not in pid)  # ...new texts


def test_model_fingerprint_ignores_cards_and_provenance_but_not_weights(tmp_path):
    from idfsplade.fingerprint import model_fingerprint

    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "sub" / "model.safetensors").write_bytes(b"\x00" * 64)
    before = model_fingerprint(str(folder))
    for name, text in (("MODEL_CARD.md", "scores"), ("SHA256SUMS", "abc  config.json"), ("stage1.yaml", "seed: 1"),
                       ("training_data.json", "[]"), ("README.md", "# card"), ("checkpoints/x.bin", "state")):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
    assert model_fingerprint(str(folder)) == before  # a card edit must not re-encode every corpus
    (folder / "sub" / "model.safetensors").write_bytes(b"\x01" + b"\x00" * 63)
    changed = model_fingerprint(str(folder))
    assert changed != before
    (folder / "config.json").write_text('{"hidden_size": 16}')
    assert model_fingerprint(str(folder)) not in (before, changed)
