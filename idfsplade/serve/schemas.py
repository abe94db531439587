"""Request and response bodies of the search service.

The request models are built per app from its :class:`ServeLimits`, so the limits are enforced by
validation (a 422 naming the field) *and* published in the OpenAPI schema (``maxLength``,
``maximum``, ``maxItems``) for clients to read.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema, create_model

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
        None, description="With explain=true: the matched query tokens, largest contribution first (they "
                          "sum to the learned sparse score: in hybrid mode, to sparse_score).")
    lexical_score: float | None = Field(
        None, description="Hybrid mode: the BM25 score before fusion (null when BM25 did not return the document).")
    sparse_score: float | None = Field(
        None, description="Hybrid mode: the learned sparse score before fusion (null when that list did not "
                          "return the document).")


class SearchResult(BaseModel):
    """Top-k of one query, best first, and the server-side time spent on it."""

    ids: list[str]
    scores: list[float]
    hits: list[Hit] = Field(default_factory=list, description="The same documents with titles, snippets and "
                                                              "(explain=true) contributions.")
    took_ms: float = Field(description="Tokenize + idf + index search (+ documents, explanations) time, in ms.")


class ErrorDetail(BaseModel):
    detail: str


class Artefact(BaseModel):
    """A file of the query side: its name (not a server path) and sha256."""

    name: str
    sha256: str


class HybridInfo(BaseModel):
    """How hybrid mode fuses the BM25 side-index's run with the learned sparse run (per query)."""

    lexical: str = Field(description="The lexical side: bm25 with a Snowball stemmer ('bm25-stem').")
    method: str = Field(description="'min_max' (min-max, weighted arithmetic mean) or 'rrf' (k=60).")
    weight: float | None = Field(description="The sparse side's weight (BM25's is 1 - it); null: unweighted.")
    depth: int = Field(description="Candidates each side retrieves before fusion (at least k).")


class Health(BaseModel):
    status: str
    documents: int
    model: str = Field(description="The model's name (an alias, hub id or folder name; never a server path).")
    tokenizer: Artefact
    idf: Artefact
    document_store: bool = Field(description="Whether hits carry titles and snippets.")
    limits: dict[str, int]
    hybrid: HybridInfo | None = Field(None, description="Set when every search fuses BM25 with the sparse run.")


# A query must hold a character that is not whitespace: whitespace has no tokens, so such a query can only
# ever return nothing, a client bug to report. Spelled out as one character class that Python's `re` and
# JSON Schema's ECMA-262 regexes read alike (their \s differ), so the published schema says exactly what
# is enforced: whitespace by str.isspace() or by ECMA-262.
NOT_BLANK = ("[^\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
             "\\u205f\\u3000\\ufeff]")
_NOT_BLANK = re.compile(NOT_BLANK)
BLANK_MESSAGE = "query is empty or whitespace only"


def is_blank(text: str) -> bool:
    return _NOT_BLANK.search(text) is None


def _not_blank(text: str) -> str:
    if is_blank(text):
        raise ValueError(BLANK_MESSAGE)
    return text


def _integral(value):
    """JSON Schema's integer: 21.0 is one (JSON has one number type), "21" and true are not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Requests are taken as the schema states them: unknown fields are refused (a misspelt "explian" would
# otherwise be ignored without a word) and values are not coerced ("10" is not an integer, 1 not a boolean).
_STRICT = ConfigDict(extra="forbid", strict=True)


def request_models(limits: ServeLimits) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(SearchRequest, BatchSearchRequest)`` enforcing ``limits``."""
    query = Annotated[str, StringConstraints(min_length=1, max_length=limits.max_query_chars),
                      AfterValidator(_not_blank), WithJsonSchema({"type": "string", "minLength": 1,
                                                                 "maxLength": limits.max_query_chars,
                                                                 "pattern": NOT_BLANK})]
    k = Annotated[int, Field(ge=1, le=limits.max_k, description="Number of documents to return."), BeforeValidator(_integral)]
    explain = Annotated[bool, Field(description="Add each hit's matched tokens and their contributions.")]
    documents = Annotated[bool, Field(description="Add each hit's title and snippet (when the index stores "
                                                  "documents).")]
    search = create_model("SearchRequest", __config__=_STRICT, query=(query, ...), k=(k, 10),
                          explain=(explain, False), documents=(documents, True))
    batch = create_model("BatchSearchRequest", __config__=_STRICT,
                         queries=(Annotated[list[query], Field(min_length=1, max_length=limits.max_batch)], ...),
                         k=(k, 10), explain=(explain, False), documents=(documents, True))
    return search, batch
