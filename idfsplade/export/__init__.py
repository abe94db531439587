"""Exports of a trained model into serving systems' own formats (OpenSearch ML-Commons)."""

from idfsplade.export.opensearch import (ExportedModel, SparseEncodingModule, export_opensearch,
                                         export_sparse_encoding, export_sparse_tokenize, trace_document_model)

__all__ = ["ExportedModel", "SparseEncodingModule", "export_opensearch", "export_sparse_encoding",
           "export_sparse_tokenize", "trace_document_model"]
