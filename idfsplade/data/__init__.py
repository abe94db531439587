"""Data loading: BEIR-format collections, streamed and validated line by line."""

from idfsplade.data.beir import (
    BeirDataset,
    Document,
    Query,
    document_text,
    iter_corpus,
    iter_jsonl,
    iter_queries,
    load_qrels,
)

__all__ = ["BeirDataset", "Document", "Query", "document_text", "iter_corpus", "iter_jsonl", "iter_queries", "load_qrels"]
