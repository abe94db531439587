"""Models: the inference-free sparse encoder (sentence-transformers ``SparseEncoder``), its
model-free query side, and the document encoder that writes sparse vectors to disk.

The torch-free parts (``QueryEncoder``, ``SparseQuery``, the model registry) import eagerly; the rest
imports torch and sentence-transformers, so it is loaded on first use: ``idfsplade search`` and the
service read the query side without ever importing torch.
"""

from idfsplade.lazy import lazy_attributes
from idfsplade.model.registry import PACKAGED_MODELS, resolve_model
from idfsplade.query import QueryEncoder, SparseQuery

__getattr__ = lazy_attributes(__name__, {
    "DocumentEncoder": "idfsplade.model.document",
    "build_inference_free_encoder": "idfsplade.model.inference_free",
    "load_sparse_encoder": "idfsplade.model.inference_free",
    "model_query_encoder": "idfsplade.model.inference_free",
    "query_weights": "idfsplade.model.inference_free",
})

__all__ = ["DocumentEncoder", "build_inference_free_encoder", "load_sparse_encoder", "model_query_encoder",
           "query_weights", "QueryEncoder", "SparseQuery", "PACKAGED_MODELS", "resolve_model"]

