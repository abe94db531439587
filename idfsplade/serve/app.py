"""The FastAPI app: HTTP in front of an :class:`InferenceFreeRetriever`, nothing more.

The app only composes: it is handed a retriever whose index is already loaded (once, at startup) and
searches through :class:`~idfsplade.search.hits.HitBuilder` (the retriever's search, plus titles,
snippets and explanations from the index's document store). Endpoints are plain ``def`` so FastAPI
runs them in its thread pool and a slow search never blocks the event loop (``/health`` keeps
answering). That makes concurrent calls into the retriever real, and they are safe:

- the index is read-only numpy arrays (memory-mapped), and its search scores into a per-thread buffer;
  the document store is read-only memory maps;
- :class:`QueryEncoder` configures truncation once, in its constructor, and then only calls the Rust
  ``Tokenizer.encode`` (snippets use the same tokenizer), which takes a shared borrow. PyO3's "Already borrowed" error comes from a
  *mutable* borrow (changing truncation/padding, as ``transformers`` does on every call) overlapping an
  encode (huggingface/tokenizers#537, huggingface/transformers#47085), which never happens here.
"""

# No ``from __future__ import annotations``: FastAPI must see the request models built inside
# ``create_app`` as real classes, not as names it would look up in this module's globals.
import time
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from idfsplade.data.store import DocumentStore
from idfsplade.search import InferenceFreeRetriever
from idfsplade.search.hits import HitBuilder
from idfsplade.search.hybrid import HybridRetriever
from idfsplade.search.index_folder import QuerySource
from idfsplade.serve.body_limit import BodySizeLimit
from idfsplade.serve.limits import ServeLimits
from idfsplade.serve.page import render_page
from idfsplade.serve.schemas import (
    BLANK_MESSAGE,
    NOT_BLANK,
    Artefact,
    ErrorDetail,
    Health,
    Hit,
    HybridInfo,
    SearchResult,
    TokenContribution,
    is_blank,
    request_models,
)


# What a POST can get besides 200 and the 422 of validation, published so clients (and fuzzers) know.
BODY_ERRORS = {400: {"model": ErrorDetail, "description": "The body is not UTF-8 (FastAPI cannot decode it)."},
               413: {"model": ErrorDetail, "description": "The body is over the byte limit (refused before parsing)."}}


def only_query_parameters(*names: str):
    """A dependency refusing (422) query parameters other than ``names``, as unknown body fields are."""
    allowed = set(names)

    def check(request: Request) -> None:
        unknown = [name for name in request.query_params if name not in allowed]
        if unknown:
            raise HTTPException(422, [{"type": "extra_forbidden", "loc": ["query", name],
                                       "msg": "Extra inputs are not permitted", "input": request.query_params[name]}
                                      for name in unknown])

    return Depends(check)


def create_app(retriever: InferenceFreeRetriever, source: QuerySource, *, limits: ServeLimits | None = None,
               documents: DocumentStore | None = None, hybrid: HybridRetriever | None = None) -> FastAPI:
    """Serve ``retriever``; ``source`` is what ``/health`` reports it was loaded from, ``documents`` the
    store that gives hits their titles and snippets (None: ids and scores only). With ``hybrid`` (whose
    sparse part is ``retriever``) every search is fused with its BM25 part."""
    limits = limits or ServeLimits()
    search_request, batch_request = request_models(limits)
    builder = HitBuilder(retriever, documents, hybrid=hybrid)
    hybrid_info = None if hybrid is None else HybridInfo(lexical="bm25-stem", method=hybrid.method,
                                                         weight=hybrid.weight, depth=hybrid.depth)
    app = FastAPI(title="idfsplade search",
                  description="Inference-free sparse retrieval: the query is the idf of its tokens, "
                              "scored on an inverted index of SPLADE document vectors.")

    def run(text: str, k: int, explain: bool = False, with_documents: bool = True) -> SearchResult:
        start = time.perf_counter()
        hits, _ = builder.search(text, k, documents=with_documents, explain=explain)
        took_ms = (time.perf_counter() - start) * 1000
        return SearchResult(ids=[h.id for h in hits], scores=[h.score for h in hits], took_ms=took_ms,
                            hits=[_hit(h) for h in hits])

    @app.post("/search", response_model=SearchResult, responses=BODY_ERRORS,
              dependencies=[only_query_parameters("explain")])
    def search(request: search_request,  # type: ignore[valid-type]
               explain: Annotated[bool, Query(description="Same as the body's explain.")] = False
               ) -> SearchResult:
        """Top-k documents for one query."""
        return run(request.query, request.k, request.explain or explain, request.documents)

    @app.get("/search", response_model=SearchResult,
             dependencies=[only_query_parameters("q", "k", "explain", "documents")])
    def search_get(q: Annotated[str, Query(min_length=1, max_length=limits.max_query_chars,
                                           json_schema_extra={"pattern": NOT_BLANK}, description="The query text.")],
                   k: Annotated[int, Query(ge=1, le=limits.max_k, description="Number of documents.")] = 10,
                   explain: Annotated[bool, Query(description="Add matched tokens and contributions.")] = False,
                   documents: Annotated[bool, Query(description="Add titles and snippets.")] = True
                   ) -> SearchResult:
        """Top-k documents for one query given in the URL (what the page at / calls)."""
        if is_blank(q):
            raise HTTPException(422, [{"type": "value_error", "loc": ["query", "q"],
                                       "msg": f"Value error, {BLANK_MESSAGE}", "input": q}])
        return run(q, k, explain, documents)

    @app.post("/search/batch", response_model=list[SearchResult], responses=BODY_ERRORS,
              dependencies=[only_query_parameters("explain")])
    def search_batch(request: batch_request,  # type: ignore[valid-type]
                     explain: Annotated[bool, Query(description="Same as the body's explain.")] = False
                     ) -> list[SearchResult]:
        """Top-k documents for each query, in the order given."""
        return [run(text, request.k, request.explain or explain, request.documents) for text in request.queries]

    @app.get("/health", response_model=Health, dependencies=[only_query_parameters()])
    def health() -> Health:
        """Liveness plus what is being served: names and checksums, no server paths."""
        return Health(status="ok", documents=len(retriever.index), model=source.model,
                      tokenizer=Artefact(**source.tokenizer.as_dict()), idf=Artefact(**source.idf.as_dict()),
                      document_store=documents is not None, limits=limits.as_dict(), hybrid=hybrid_info)

    page = render_page(max_query_chars=limits.max_query_chars, max_k=limits.max_k)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page() -> HTMLResponse:
        """A search page: a box, results with titles, snippets, scores and the matched tokens."""
        return HTMLResponse(page)

    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    return app


def _hit(hit) -> Hit:
    explanation = None if hit.explanation is None else [
        TokenContribution(token=c.token, idf=c.idf, weight=c.weight, contribution=c.contribution)
        for c in hit.explanation]
    return Hit(id=hit.id, score=hit.score, title=hit.title, snippet=hit.snippet, title_highlights=hit.title_highlights,
               highlights=hit.highlights, explanation=explanation, lexical_score=hit.lexical_score,
               sparse_score=hit.sparse_score)
