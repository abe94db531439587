"""The composite document encoder (idfsplade-mini's form): w = w_mlm + alpha * w_tied, checked against vectors
computed by hand from raw masked-LM logits and raw all-MiniLM-L6-v2 hidden states, through the encoder, the
sentence-transformers path, a save/load round trip and the packaged model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

from idfsplade.errors import InputError
from idfsplade.idf import IdfTable
from idfsplade.model import DocumentEncoder, load_sparse_encoder, model_query_encoder, resolve_model
from idfsplade.model import composite
from idfsplade.model.composite import SparseSum, build_composite_encoder, composite_of

DOCS = ["Currently New York is rainy.",
        "The library installed a new computer system for information retrieval, with terminals in every room.",
        "ny"]
ALPHA, TOP_K = 0.5, 20


def parts(top_k=TOP_K):
    return [{"kind": "mlm", "source": "splade-tiny", "weight": 1.0, "max_seq_length": 512},
            {"kind": "tied", "source": "all-MiniLM-L6-v2", "weight": ALPHA, "max_seq_length": 256, "top_k": top_k,
             "bias_start": -2.0}]


@pytest.fixture(scope="module")
def bias():
    generator = torch.Generator().manual_seed(0)
    return -2.0 + 0.5 * torch.randn(30522, generator=generator)


@pytest.fixture(scope="module")
def model(adi_idf, bias):
    return build_composite_encoder(parts(), adi_idf, biases={"part1.bias": bias})


@pytest.fixture(scope="module")
def reference(splade_tiny_path, bias):
    """Per text, no padding: max_i log1p(relu(logit)) of the MLM + alpha * top-k of log1p(relu(max_i h_i.E + b))."""
    tokenizer = AutoTokenizer.from_pretrained(splade_tiny_path)
    mlm = AutoModelForMaskedLM.from_pretrained(splade_tiny_path).eval()
    minilm_path = resolve_model("all-MiniLM-L6-v2")
    minilm = AutoModel.from_pretrained(minilm_path).eval()
    minilm_tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    embeddings = minilm.get_input_embeddings().weight
    specials = tokenizer.all_special_ids
    rows = []
    with torch.no_grad():
        for text in DOCS:
            w_mlm = torch.log1p(torch.relu(mlm(**tokenizer(text, return_tensors="pt")).logits[0])).max(0).values
            w_mlm[specials] = 0
            hidden = minilm(**minilm_tokenizer(text, return_tensors="pt")).last_hidden_state[0]
            w_tied = torch.log1p(torch.relu((hidden @ embeddings.T).max(0).values + bias))
            w_tied[specials] = 0
            w_tied[w_tied < w_tied.topk(TOP_K).values[-1]] = 0
            rows.append((w_mlm + ALPHA * w_tied).numpy())
    return np.stack(rows)


def test_vocabularies_agree(splade_tiny_path):
    """The sum is only meaningful over one vocabulary: both packaged encoders use BERT uncased."""
    a = AutoTokenizer.from_pretrained(splade_tiny_path).get_vocab()
    b = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2")).get_vocab()
    assert a == b


def test_encoder_matches_hand_computed_vectors(model, reference):
    encoder = DocumentEncoder(model, batch_size=2, precision="fp32")  # padded batches
    assert type(encoder).__name__ == "CompositeDocumentEncoder"
    encoded = encoder.encode(DOCS).toarray()
    np.testing.assert_allclose(encoded, reference, atol=2e-4)
    tied = encoded - DocumentEncoder(load_sparse_encoder("splade-tiny", idf=IdfTable(np.ones(30522, np.float32),
                                                                               model[0].sub_modules["query"][0].tokenizer)),
                                     batch_size=2).encode(DOCS).toarray()
    assert ((np.abs(tied) > 1e-6).sum(axis=1) <= TOP_K).all()  # top-k applies to the tied part only


def test_sentence_transformers_path_agrees(model, reference):
    with torch.no_grad():
        st = model.encode_document(DOCS, convert_to_tensor=True, batch_size=2).to_dense().numpy()
    np.testing.assert_allclose(st, reference, atol=2e-4)


def test_save_and_load_round_trip(model, reference, tmp_path, adi_idf):
    model.save(str(tmp_path / "mini"))
    IdfTable(adi_idf.weights, adi_idf.tokenizer).save(tmp_path / "mini" / "idf.json")
    loaded = load_sparse_encoder(str(tmp_path / "mini"))
    assert isinstance(composite_of(loaded), SparseSum)
    np.testing.assert_allclose(DocumentEncoder(loaded, precision="fp32").encode(DOCS).toarray(), reference, atol=2e-4)
    # the query side is unchanged: unique tokens weighted by idf, no model
    query = model_query_encoder(loaded).encode("new york weather")
    ids = adi_idf.tokenizer("new york weather", add_special_tokens=False)["input_ids"]
    assert sorted(query.ids.tolist()) == sorted(set(ids))
    np.testing.assert_allclose(query.weights, adi_idf.weights[np.sort(np.unique(ids))], rtol=1e-6)


def test_bf16_is_picked_only_where_native(model, monkeypatch):
    monkeypatch.setattr("idfsplade.model.document.native_bf16", lambda device: False)
    assert DocumentEncoder(model).precision == "fp32"
    monkeypatch.setattr("idfsplade.model.document.native_bf16", lambda device: True)
    encoder = DocumentEncoder(model)
    assert encoder.precision == "bf16"
    assert DocumentEncoder(model, precision="fp32").precision == "fp32"  # an explicit choice wins
    fp32 = DocumentEncoder(model, precision="fp32").encode(DOCS).toarray()
    bf16 = encoder.encode(DOCS).toarray()
    for a, b in zip(fp32, bf16):  # bf16 moves weights a little, not which tokens lead
        assert set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])
        assert np.corrcoef(a, b)[0, 1] > 0.98


def test_unknown_part_kind_is_an_input_error():
    with pytest.raises(InputError, match="unknown part kind"):
        SparseSum([{"kind": "dense", "source": "all-MiniLM-L6-v2"}])


def test_native_bf16_reads_cpu_flags(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f\n")
    monkeypatch.setattr(composite, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else __import__("pathlib").Path(p))
    assert composite.native_bf16("cpu") is False
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert composite.native_bf16("cpu") is True


def test_fingerprint_follows_the_parts_read_from_other_folders(tmp_path):
    """Cached vectors are keyed by the model's fingerprint: a composite names its parts by alias or folder, so a
    change in a part's folder must change the composite's fingerprint too."""
    from idfsplade.fingerprint import model_fingerprint

    part = tmp_path / "part"
    part.mkdir()
    (part / "config.json").write_text('{"hidden_size": 128}')
    model = tmp_path / "model" / "document_0_SparseSum"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"parts": [{"kind": "mlm", "source": "%s"}]}' % part.as_posix())
    before = model_fingerprint(str(tmp_path / "model"))
    assert model_fingerprint(str(tmp_path / "model")) == before
    (part / "config.json").write_text('{"hidden_size": 256}')
    assert model_fingerprint(str(tmp_path / "model")) != before


def test_single_encoder_commands_refuse_a_composite_in_one_line(model):
    """train/adapt/export need a single masked LM: a composite gets a one-line InputError, not an IndexError."""
    from idfsplade.model.inference_free import document_modules

    with pytest.raises(InputError, match="composite model"):
        document_modules(model)


def test_packaged_mini_through_encode_index_search(adi_path, tmp_path, monkeypatch, capsys):
    """The shipped idfsplade-mini through the commands: encode (ADI, 82 documents), index, then search with no
    model; the scores search prints are the index's dot products of the encoded vectors and the idf query."""
    from cli_helpers import run_cli

    from idfsplade.vectors import load_csr

    code, _, err = run_cli(monkeypatch, capsys, "encode", str(adi_path), "-m", "idfsplade-mini",
                           "--out", str(tmp_path / "docs"))
    assert code == 0, err
    docs, ids, _ = load_csr(tmp_path / "docs")
    assert docs.shape == (82, 30522)
    code, _, err = run_cli(monkeypatch, capsys, "index", str(tmp_path / "docs"), "--out", str(tmp_path / "index"))
    assert code == 0, err
    query = "information retrieval systems"
    code, out, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "index"), "-q", query, "--k", "3")
    assert code == 0, err
    ranked = [line.split("\t") for line in out.strip().splitlines()]
    from idfsplade.search.index_folder import open_index_retriever

    encoder = open_index_retriever(tmp_path / "index")[0].query_encoder
    q = encoder.to_csr([encoder.encode(query)])
    scores = (q @ docs.T).toarray()[0]
    best = np.argsort(-scores, kind="stable")[:3]
    assert [r[1] for r in ranked] == [ids[i] for i in best]
    np.testing.assert_allclose([float(r[2]) for r in ranked], scores[best], atol=1e-3)


def test_export_traces_the_composite_as_one_model(model, tmp_path):
    """export opensearch: one TorchScript module computing the whole sum from ML-Commons' single tokenization
    (512 tokens; the tied part's first 256 with [SEP] last where the text is longer), equal to the encoder."""
    import zipfile

    from tokenizers import Tokenizer

    from idfsplade.export.opensearch import export_sparse_encoding

    export_sparse_encoding(model, tmp_path / "export", "mini-test")
    with zipfile.ZipFile(tmp_path / "export" / "sparse_encoding.zip") as z:
        z.extractall(tmp_path / "unzipped")
    traced = torch.jit.load(str(tmp_path / "unzipped" / "model.pt"))
    tokenizer = Tokenizer.from_file(str(tmp_path / "unzipped" / "tokenizer.json"))
    texts = DOCS + [" ".join(["retrieval of scientific information from large collections"] * 40)]
    assert 256 < len(tokenizer.encode(texts[-1]).ids) <= 512
    expected = DocumentEncoder(model, precision="fp32").encode(texts).toarray()
    with torch.no_grad():
        got = np.stack([traced({"input_ids": torch.tensor([e.ids]), "attention_mask": torch.tensor([e.attention_mask])}
                               )["output"][0].numpy() for e in map(tokenizer.encode, texts)])
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_packaged_mini_is_whole_and_small():
    """Every shipped file matches SHA256SUMS (what `idfsplade check` verifies); the folder holds only the head's
    bias and configs (both encoders are read from their packages), far under the issue's 60 MB."""
    import hashlib
    from pathlib import Path

    from idfsplade.check import check_folder

    folder = Path(resolve_model("idfsplade-mini"))
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    listed = {line.split("  ", 1)[1] for line in lines}
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert listed == on_disk
    for line in lines:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert check_folder(folder).files == len(lines)  # raises on a damaged file
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 3 * 2**20


def test_adapt_refuses_a_composite_before_any_work(adi_path, tmp_path, monkeypatch, capsys):
    """`adapt --model idfsplade-mini`: one line, and no training data or teacher vectors built first."""
    from cli_helpers import run_cli

    from idfsplade.model.composite import is_composite

    assert is_composite("idfsplade-mini") and not is_composite("idfsplade-tiny")
    code, _, err = run_cli(monkeypatch, capsys, "adapt", str(adi_path), "--model", "idfsplade-mini",
                           "--out", str(tmp_path / "run"), "--max-steps", "2")
    assert code == 2 and err.count("\n") == 1 and "composite model" in err, err
    assert not list((tmp_path / "run").rglob("*.jsonl")) and not list((tmp_path / "run").rglob("*.npy"))
