"""Request and response bodies of the search service.

The request models are built per app from its :class:`ServeLimits`, so the limits are enforced by
validation (a 422 naming the field) *and* published in the OpenAPI schema (``maxLength``,
``maximum``, ``maxItems``) for clients to read.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, create_model

from idfsplade.serve.limits import ServeLimits


class SearchResult(BaseModel):
    """Top-k of one query, best first, and the server-side time spent on it."""

    ids: list[str]
    scores: list[float]
    took_ms: float = Field(description="Tokenize + idf + index search time, in milliseconds.")


class Health(BaseModel):
    status: str
    documents: int
    model: str
    idf: str
    limits: dict[str, int]


def _not_blank(text: str) -> str:
    # Whitespace has no tokens, so such a query can only ever return nothing: a client bug to report.
    if not text.strip():
        raise ValueError("query is empty or whitespace only")
    return text


def request_models(limits: ServeLimits) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(SearchRequest, BatchSearchRequest)`` enforcing ``limits``."""
    query = Annotated[str, StringConstraints(min_length=1, max_length=limits.max_query_chars),
                      AfterValidator(_not_blank)]
    k = Annotated[int, Field(ge=1, le=limits.max_k, description="Number of documents to return.")]
    search = create_model("SearchRequest", query=(query, ...), k=(k, 10))
    batch = create_model("BatchSearchRequest",
                         queries=(Annotated[list[query], Field(min_length=1, max_length=limits.max_batch)], ...),
                         k=(k, 10))
    return search, batch
