"""The student: an inference-free ``SparseEncoder`` whose query route is fixed and whose document
route (masked LM + SPLADE max pooling) is trained.

``query_weighting`` is the switch between the paper's IDF-aware matching and plain SPLADE-doc: the
query route holds ``idf`` (IDF-SPLADE) or 1 for every non-special token (binary bag of words). The
student is trained and saved with the same query route, so what it learned is what it serves.
"""

from __future__ import annotations

import numpy as np
from sentence_transformers import SparseEncoder

from idfsplade.errors import InputError
from idfsplade.idf import IdfTable
from idfsplade.model import load_sparse_encoder
from idfsplade.model.inference_free import document_modules

QUERY_WEIGHTINGS = ("idf", "binary")


def binary_weights(idf: IdfTable) -> IdfTable:
    """1 for every token that can occur in a query (non-special), 0 for special tokens."""
    return IdfTable((idf.weights > 0).astype(np.float32), idf.tokenizer, n_docs=idf.n_docs)


def build_student(model: str, idf: IdfTable, query_weighting: str = "idf", max_seq_length: int = 256,
                  device: str | None = None) -> SparseEncoder:
    """Load ``model`` as an inference-free encoder with the chosen query weights."""
    if query_weighting not in QUERY_WEIGHTINGS:
        raise InputError(f"query_weighting must be one of {list(QUERY_WEIGHTINGS)}, got {query_weighting!r}",
                         field="student.query_weighting")
    table = idf if query_weighting == "idf" else binary_weights(idf)
    student = load_sparse_encoder(model, idf=table, device=device)
    set_max_seq_length(student, max_seq_length)
    return student


def set_max_seq_length(student: SparseEncoder, max_seq_length: int) -> None:
    """Document truncation: short while training (speed), the full 512 once saved."""
    mlm, _ = document_modules(student)
    mlm.max_seq_length = max_seq_length
