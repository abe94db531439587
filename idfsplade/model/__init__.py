"""Models: the inference-free sparse encoder (sentence-transformers ``SparseEncoder``), its
model-free query side, and the document encoder that writes sparse vectors to disk."""

from idfsplade.model.document import DocumentEncoder
from idfsplade.model.inference_free import build_inference_free_encoder, load_sparse_encoder, query_weights
from idfsplade.model.query import QueryEncoder, SparseQuery
from idfsplade.model.registry import PACKAGED_MODELS, resolve_model

__all__ = ["DocumentEncoder", "build_inference_free_encoder", "load_sparse_encoder", "query_weights",
           "QueryEncoder", "SparseQuery", "PACKAGED_MODELS", "resolve_model"]
