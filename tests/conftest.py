"""Shared fixtures: tiny data and the packaged SPLADE-tiny model (offline), built once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Offline by default; IDFSPLADE_NETWORK_TESTS=1 runs the tests marked `network` against the model hub.
NETWORK = os.environ.get("IDFSPLADE_NETWORK_TESTS") == "1"
if not NETWORK:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def adi_path() -> Path:
    """ADI: 82 documents, 35 queries, integer ids shared by queries and documents."""
    return DATASETS / "adi"


@pytest.fixture(scope="session")
def splade_tiny_path() -> str:
    from idfsplade.model import resolve_model

    return resolve_model("splade-tiny")


@pytest.fixture(scope="session")
def tokenizer(splade_tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(splade_tiny_path)


@pytest.fixture(scope="session")
def adi_idf(adi_path, tokenizer):
    from idfsplade.data import BeirDataset, document_text
    from idfsplade.idf import IdfTable

    return IdfTable.from_corpus((document_text(d) for d in BeirDataset(adi_path).iter_corpus()), tokenizer)


@pytest.fixture(scope="session")
def tiny_encoder(splade_tiny_path, adi_idf):
    """The packaged SPLADE-tiny as an inference-free SparseEncoder with ADI's IDF."""
    import torch

    from idfsplade.model import build_inference_free_encoder

    torch.manual_seed(0)
    return build_inference_free_encoder(splade_tiny_path, adi_idf, device="cpu")


@pytest.fixture(scope="session")
def scifact_path() -> Path:
    return DATASETS / "scifact"


SCIFACT_SUBSET_DOCS = 1000


@pytest.fixture(scope="session")
def scifact_subset(scifact_path, tmp_path_factory) -> Path:
    """A BEIR folder with SciFact's test queries and qrels and 1,000 of its 5,183 documents: every
    document judged for a test query, then the corpus's first others. Real text and real learned
    vectors for the backend tests, at a fraction of the full corpus's encoding time."""
    import shutil

    from idfsplade.data import BeirDataset

    dataset = BeirDataset(scifact_path)
    _, qrels = dataset.split_queries("test")
    judged = {d for docs in qrels.values() for d in docs}
    lines = (scifact_path / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    keep = [line for line in lines if json.loads(line)["_id"] in judged]
    keep += [line for line in lines if json.loads(line)["_id"] not in judged][:SCIFACT_SUBSET_DOCS - len(keep)]
    folder = tmp_path_factory.mktemp("scifact-subset") / "scifact"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
    shutil.copy(scifact_path / "queries.jsonl", folder / "queries.jsonl")
    shutil.copy(scifact_path / "qrels" / "test.tsv", folder / "qrels" / "test.tsv")
    return folder


@pytest.fixture(scope="session")
def scifact_sparse(scifact_subset, tmp_path_factory):
    """Real encoded SciFact documents (:func:`scifact_subset`; SPLADE-tiny, corpus IDF, the first 256
    tokens of each): ``(retriever, doc_matrix)``. Encoding took 85 s on a slow day on 2 cores (1,500 at 512
    tokens: 147 s), so it happens once per session and only for tests marked slow.
    """
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, build_sparse_retriever

    work = tmp_path_factory.mktemp("scifact-splade-tiny")
    return build_sparse_retriever(SparseModelSpec(model="splade-tiny", idf="corpus", max_length=256),
                                  BeirDataset(scifact_subset), work)


@pytest.fixture(scope="session")
def adi_reference(adi_path, splade_tiny_path) -> dict[str, float]:
    """ADI nDCG@10 computed independently of the pipeline (tests/reference.py): the values the
    end-to-end tests check against, instead of numbers copied from the pipeline's earlier output."""
    from reference import bm25_ndcg10, inference_free_ndcg10

    return {"bm25": bm25_ndcg10(adi_path), "bm25-stem": bm25_ndcg10(adi_path, "english"),
            "splade-tiny": inference_free_ndcg10(adi_path, splade_tiny_path)}


@pytest.fixture(scope="session")
def adi_index(adi_path, tiny_encoder, tmp_path_factory) -> Path:
    """ADI encoded by ``tiny_encoder`` as an index folder with its query side and document store,
    as `idfsplade index` writes it (for the service, page and fuzz tests)."""
    from idfsplade.data import document_text, iter_corpus
    from idfsplade.index import InvertedIndex
    from idfsplade.model import DocumentEncoder, model_query_encoder
    from idfsplade.search.index_folder import write_index

    docs = list(iter_corpus(adi_path / "corpus.jsonl"))
    matrix = DocumentEncoder(tiny_encoder).encode([document_text(d) for d in docs])
    folder = tmp_path_factory.mktemp("adi-index") / "index"
    write_index(InvertedIndex.from_csr(matrix, [d.id for d in docs], info={"model": "splade-tiny"}), folder,
                model_query_encoder(tiny_encoder), adi_path / "corpus.jsonl")
    return folder


@pytest.fixture
def max_fusion():
    """A fusion method registered as docs/serving.md shows (the larger weighted score of a document),
    removed again after the test; yields its name."""
    from idfsplade.search.fusion import FUSIONS, register_fusion

    @register_fusion("max", summary="the larger weighted score")
    def max_fusion(lists, weights, rank_constant):
        fused = {}
        for weight, scores in zip(weights, lists):
            for doc, score in scores.items():
                fused[doc] = max(fused.get(doc, 0.0), weight * score)
        return fused

    yield "max"
    del FUSIONS["max"]
