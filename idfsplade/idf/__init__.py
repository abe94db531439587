"""Inverse document frequency over WordPiece tokens, stored as OpenSearch's ``idf.json``."""

from idfsplade.idf.idf import (
    MISSING_TOKEN_IDF,
    IdfTable,
    compute_document_frequency,
    idf_from_df,
)

__all__ = ["MISSING_TOKEN_IDF", "IdfTable", "compute_document_frequency", "idf_from_df"]
