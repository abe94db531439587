"""One rule for a token missing from idf.json — it weighs 1.0 (OpenSearch) — whichever ``--idf`` is
chosen, including a sentence-transformers checkpoint used with ``--idf model``; and a trained run's
``<run>/model`` folder evaluates with ``--idf corpus`` (its tokenizer sits in a Router sub-folder)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from idfsplade.data import BeirDataset
from idfsplade.idf import MISSING_TOKEN_IDF, IdfTable
from idfsplade.model import build_inference_free_encoder, load_sparse_encoder, query_weights
from idfsplade.pipeline import SparseModelSpec, load_model


@pytest.fixture(scope="module")
def st_folder_without_hello(tmp_path_factory, splade_tiny_path, adi_idf):
    """A saved sentence-transformers checkpoint whose idf.json lacks the token 'hello'."""
    folder = tmp_path_factory.mktemp("st") / "model"
    build_inference_free_encoder(splade_tiny_path, adi_idf, device="cpu").save(str(folder))
    table = adi_idf.to_dict()
    del table["hello"]
    (folder / "idf.json").write_text(json.dumps(table), encoding="utf-8")
    return folder


def _weight(model, token: str) -> float:
    weights, tokenizer = query_weights(model)
    return float(weights[tokenizer.convert_tokens_to_ids(token)])


def test_idf_model_on_st_checkpoint_gives_missing_token_one(st_folder_without_hello, adi_idf):
    model = load_sparse_encoder(str(st_folder_without_hello))  # --idf model
    assert _weight(model, "hello") == MISSING_TOKEN_IDF
    # every other token keeps the checkpoint's idf.json weight
    assert _weight(model, "computer") == pytest.approx(adi_idf.to_dict()["computer"], abs=1e-6)


def test_idf_path_gives_missing_token_one(st_folder_without_hello, splade_tiny_path):
    path = st_folder_without_hello / "idf.json"
    assert _weight(load_sparse_encoder(splade_tiny_path, idf=path), "hello") == MISSING_TOKEN_IDF  # bare MLM
    assert _weight(load_sparse_encoder(str(st_folder_without_hello), idf=path), "hello") == MISSING_TOKEN_IDF


def test_idf_corpus_has_every_token_and_reads_back_with_the_same_rule(adi_path, tmp_path, splade_tiny_path,
                                                                       tokenizer):
    spec = SparseModelSpec(model=splade_tiny_path, idf="corpus")
    model, idf_file = load_model(spec, BeirDataset(adi_path), tmp_path)
    written = json.loads(idf_file.read_text(encoding="utf-8"))
    specials = set(tokenizer.all_special_tokens)
    assert set(written) == set(tokenizer.get_vocab()) - specials  # nothing missing: unseen tokens get max idf
    n = 82
    assert written["zebra"] == pytest.approx(np.log1p((n + 0.5) / 0.5), abs=1e-5)  # never in ADI
    del written["zebra"]
    assert IdfTable.from_dict(written, tokenizer).weights[tokenizer.convert_tokens_to_ids("zebra")] == 1.0


def test_trained_run_folder_evaluates_with_corpus_idf(st_folder_without_hello, adi_path, tmp_path, adi_idf):
    run_model = tmp_path / "run" / "model"
    run_model.parent.mkdir()
    shutil.copytree(st_folder_without_hello, run_model)
    spec = SparseModelSpec(model=str(run_model), idf="corpus")
    model, idf_file = load_model(spec, BeirDataset(adi_path), tmp_path / "work")
    assert idf_file == tmp_path / "work" / "idf.json"
    assert _weight(model, "hello") == pytest.approx(adi_idf.to_dict()["hello"], abs=1e-6)  # corpus idf, not 1.0


def test_a_trained_run_folder_can_be_the_next_students_starting_model(st_folder_without_hello, adi_path, tmp_path,
                                                                        adi_idf):
    """Stage 2 of a two-stage training starts from stage 1's SparseEncoder folder: its IDF is computed
    with the tokenizer inside the Router sub-folder (AutoTokenizer on the folder itself fails)."""
    from idfsplade.train import load_config
    from idfsplade.train.trainer import load_idf

    config = load_config(adi_path.parent.parent / "configs" / "scifact-splade-tiny.yaml",
                         {"student.model": str(st_folder_without_hello), "data.dataset": str(adi_path)})
    table = load_idf(config, tmp_path)
    np.testing.assert_allclose(table.weights, adi_idf.weights, rtol=1e-6)
