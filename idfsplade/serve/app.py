"""The FastAPI app: HTTP in front of an :class:`InferenceFreeRetriever`, nothing more.

The app only composes: it is handed a retriever whose index is already loaded (once, at startup)
and calls ``retriever.search``. Endpoints are plain ``def`` so FastAPI runs them in its thread pool and
a slow search never blocks the event loop (``/health`` keeps answering). That makes concurrent calls
into the retriever real, and they are safe:

- the index is read-only numpy arrays (memory-mapped), and its search scores into a per-thread buffer;
- :class:`QueryEncoder` configures truncation once, in its constructor, and then only calls the Rust
  ``Tokenizer.encode``, which takes a shared borrow. PyO3's "Already borrowed" error comes from a
  *mutable* borrow (changing truncation/padding, as ``transformers`` does on every call) overlapping an
  encode (huggingface/tokenizers#537, huggingface/transformers#47085), which never happens here.
"""

# No ``from __future__ import annotations``: FastAPI must see the request models built inside
# ``create_app`` as real classes, not as names it would look up in this module's globals.
import time

from fastapi import FastAPI

from idfsplade.search import InferenceFreeRetriever
from idfsplade.serve.body_limit import BodySizeLimit
from idfsplade.serve.limits import ServeLimits
from idfsplade.serve.schemas import Health, SearchResult, request_models


def create_app(retriever: InferenceFreeRetriever, *, model: str, idf: str,
               limits: ServeLimits | None = None) -> FastAPI:
    """Serve ``retriever``; ``model`` and ``idf`` are what ``/health`` reports it was loaded from."""
    limits = limits or ServeLimits()
    search_request, batch_request = request_models(limits)
    app = FastAPI(title="idfsplade search",
                  description="Inference-free sparse retrieval: the query is the idf of its tokens, "
                              "scored on an inverted index of SPLADE document vectors.")

    def run(text: str, k: int) -> SearchResult:
        start = time.perf_counter()
        hits = retriever.search(text, k)
        took_ms = (time.perf_counter() - start) * 1000
        return SearchResult(ids=hits.ids, scores=hits.scores.tolist(), took_ms=took_ms)

    @app.post("/search", response_model=SearchResult)
    def search(request: search_request) -> SearchResult:  # type: ignore[valid-type]
        """Top-k documents for one query."""
        return run(request.query, request.k)

    @app.post("/search/batch", response_model=list[SearchResult])
    def search_batch(request: batch_request) -> list[SearchResult]:  # type: ignore[valid-type]
        """Top-k documents for each query, in the order given."""
        return [run(text, request.k) for text in request.queries]

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Liveness plus what is being served."""
        return Health(status="ok", documents=len(retriever.index), model=model, idf=idf,
                      limits=limits.as_dict())

    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    return app
