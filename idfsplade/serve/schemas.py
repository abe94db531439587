"""Request and response bodies of the search service.

The request models are built per app from its :class:`ServeLimits`, so the limits are enforced by
validation (a 422 naming the field) *and* published in the OpenAPI schema (``maxLength``,
``maximum``, ``maxItems``) for clients to read.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, create_model

from idfsplade.serve.limits import ServeLimits


class TokenContribution(BaseModel):
    """One query token's share of a hit's score."""

    token: str
    idf: float = Field(description="The token's query weight (its idf).")
    weight: float = Field(description="The document's weight for the token, w_d(t).")
    contribution: float = Field(description="idf × weight; a hit's contributions sum to its score.")


class Hit(BaseModel):
    """One document of a result, best first."""

    id: str
    score: float
    title: str | None = Field(None, description="From the index's document store (null without one).")
    snippet: str | None = Field(None, description="The part of the text with the most matched tokens.")
    title_highlights: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, end) character spans of matched tokens in the title.")
    highlights: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, end) character spans of matched tokens in the snippet.")
    explanation: list[TokenContribution] | None = Field(
        None, description="With explain=true: the matched query tokens, largest contribution first.")


class SearchResult(BaseModel):
    """Top-k of one query, best first, and the server-side time spent on it."""

    ids: list[str]
    scores: list[float]
    hits: list[Hit] = Field(default_factory=list, description="The same documents with titles, snippets and "
                                                              "(explain=true) contributions.")
    took_ms: float = Field(description="Tokenize + idf + index search (+ documents, explanations) time, in ms.")


class Artefact(BaseModel):
    """A file of the query side: its name (not a server path) and sha256."""

    name: str
    sha256: str


class Health(BaseModel):
    status: str
    documents: int
    model: str = Field(description="The model's name (an alias, hub id or folder name; never a server path).")
    tokenizer: Artefact
    idf: Artefact
    document_store: bool = Field(description="Whether hits carry titles and snippets.")
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
    explain = Annotated[bool, Field(description="Add each hit's matched tokens and their contributions.")]
    documents = Annotated[bool, Field(description="Add each hit's title and snippet (when the index stores "
                                                  "documents).")]
    search = create_model("SearchRequest", query=(query, ...), k=(k, 10), explain=(explain, False),
                          documents=(documents, True))
    batch = create_model("BatchSearchRequest",
                         queries=(Annotated[list[query], Field(min_length=1, max_length=limits.max_batch)], ...),
                         k=(k, 10), explain=(explain, False), documents=(documents, True))
    return search, batch
