"""OpenSearch as a remote sparse index: one ``rank_features`` field per document, dot-product scoring.

Documents are pre-encoded CSR rows, written as ``{token: weight}``; queries are ``{token: idf}``.
Two query forms score the same sum ``Σ_t q_t · w_d(t)``:

- ``neural_sparse`` with ``query_tokens`` (neural-search plugin, OpenSearch >= 2.14): one
  ``FeatureField.newLinearQuery(field, token, weight)`` per token;
- ``bool``/``should`` of ``rank_feature`` clauses with the ``linear`` function and ``boost`` = query
  weight (core OpenSearch, no plugin).

Checked against the OpenSearch docs (neural-sparse query, rank_features field type) and sources
(``RankFeaturesFieldMapper``, ``RankFeatureQueryBuilder``, Lucene ``FeatureField``):

- Lucene ``FeatureField`` refuses values that are not positive normal floats, so zero (and
  negative, and subnormal) weights are dropped, never sent;
- values keep 9 significant bits (relative error <= 0.4%), so scores match exact ones to ~0.4%;
- dots: OpenSearch *indexes* feature names with dots, but ``rank_feature`` addresses a feature as
  ``<field>.<feature>`` split at the *last* dot, so it cannot reach ``"."``, ``"..."`` or ``"##."``
  (the BERT vocabulary's dotted tokens); Elasticsearch rejects them at index time. Feature names
  are the raw tokens by default, because ML-Commons' ``sparse_encoding`` processor and
  ``SPARSE_TOKENIZE`` model write and query raw tokens and the same index must serve both; the
  ``rank_feature`` form then leaves dotted tokens out. ``escape_dots=True`` writes ``.`` as
  ``DOT_ESCAPE`` in documents and in both query forms, so every token is reachable by
  ``rank_feature`` (and the index is Elasticsearch-compatible), at the cost of that interop.

``opensearch-py`` is optional (``pip install 'idfsplade[opensearch]'``); only :meth:`OpenSearchSparseIndex.connect`
and the methods that talk to a cluster import it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from idfsplade.errors import IdfspladeError, InputError
from idfsplade.index.base import SearchHits

DOT_ESCAPE = "\u2024"  # ONE DOT LEADER: looks like '.', absent from BERT vocabularies
QUERY_TYPES = ("neural_sparse", "rank_feature")
_MIN_FEATURE_VALUE = float(np.finfo(np.float32).tiny)  # Lucene FeatureField: a positive *normal* float


class FeatureNames:
    """Term id -> ``rank_features`` feature name (the vocabulary token, dots optionally escaped)."""

    def __init__(self, vocab: Mapping[str, int], escape_dots: bool = False) -> None:
        if escape_dots and any(DOT_ESCAPE in token for token in vocab):
            raise InputError(f"the vocabulary contains {DOT_ESCAPE!r}, so dots cannot be escaped with it")
        self.escape_dots = escape_dots
        self.names: list[str | None] = [None] * (max(vocab.values(), default=-1) + 1)
        for token, term_id in vocab.items():
            self.names[term_id] = token.replace(".", DOT_ESCAPE) if escape_dots else token

    def __len__(self) -> int:
        return len(self.names)

    def features(self, term_ids: np.ndarray, weights: np.ndarray) -> dict[str, float]:
        """``{name: weight}`` for the weights ``rank_features`` accepts (positive normal floats)."""
        keep = np.asarray(weights) >= _MIN_FEATURE_VALUE
        return {self.names[int(t)]: float(w) for t, w in zip(np.asarray(term_ids)[keep], np.asarray(weights)[keep])}


def index_body(field: str) -> dict[str, Any]:
    """Index creation body: one ``rank_features`` field; the document id is ``_id``."""
    return {"mappings": {"properties": {field: {"type": "rank_features"}}}}


def bulk_actions(index: str, field: str, names: FeatureNames, matrix: sp.csr_matrix,
                 doc_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
    """One ``opensearchpy.helpers.bulk`` action per CSR row: ``_id`` = doc id, source = ``{field: features}``."""
    if matrix.shape[0] != len(doc_ids):
        raise InputError(f"{matrix.shape[0]} document vectors but {len(doc_ids)} ids")
    if matrix.shape[1] != len(names):
        raise InputError(f"vectors have {matrix.shape[1]} dimensions, the vocabulary {len(names)}")
    for row, doc_id in enumerate(doc_ids):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        yield {"_index": index, "_id": str(doc_id),
               "_source": {field: names.features(matrix.indices[start:end], matrix.data[start:end])}}


def neural_sparse_body(field: str, tokens: Mapping[str, float], k: int) -> dict[str, Any]:
    """``neural_sparse`` search body with pre-encoded ``query_tokens``."""
    return {"size": k, "_source": False, "track_total_hits": False,
            "query": {"neural_sparse": {field: {"query_tokens": dict(tokens)}}}}


def rank_feature_body(field: str, tokens: Mapping[str, float], k: int) -> dict[str, Any]:
    """``bool``/``should`` of linear ``rank_feature`` clauses boosted by the query weight.

    Tokens with a dot are left out: ``rank_feature`` cannot address them (module docstring).
    """
    clauses = [{"rank_feature": {"field": f"{field}.{token}", "linear": {}, "boost": weight}}
               for token, weight in tokens.items() if "." not in token]
    return {"size": k, "_source": False, "track_total_hits": False, "query": {"bool": {"should": clauses}}}


class OpenSearchSparseIndex:
    """A :class:`~idfsplade.index.base.SparseIndex` kept in an OpenSearch index.

    ``vocab`` is the tokenizer's ``{token: id}`` (``tokenizer.get_vocab()``): term ids of vectors and
    queries become token strings, as ML-Commons' sparse models write them.
    """

    def __init__(self, client: Any, index: str, vocab: Mapping[str, int], field: str = "sparse_embedding",
                 query_type: str = "neural_sparse", escape_dots: bool = False) -> None:
        if query_type not in QUERY_TYPES:
            raise InputError(f"query_type must be one of {', '.join(QUERY_TYPES)}, got {query_type!r}")
        self.client = client
        self.index = index
        self.field = field
        self.query_type = query_type
        self.names = FeatureNames(vocab, escape_dots=escape_dots)

    @classmethod
    def connect(cls, url: str, index: str, vocab: Mapping[str, int], client_options: dict | None = None,
                **kwargs: Any) -> OpenSearchSparseIndex:
        """Open a client on ``url`` (credentials may be in the URL); ``client_options`` go to ``OpenSearch``."""
        try:
            from opensearchpy import OpenSearch
        except ImportError:
            raise InputError("OpenSearch support needs opensearch-py: pip install 'idfsplade[opensearch]'") from None
        return cls(OpenSearch(hosts=[url], **(client_options or {})), index, vocab, **kwargs)

    def create(self, replace: bool = False) -> None:
        """Create the index with the ``rank_features`` mapping (deleting an existing one if ``replace``)."""
        if replace:
            self.client.indices.delete(index=self.index, params={"ignore_unavailable": "true"})
        self.client.indices.create(index=self.index, body=index_body(self.field))

    def add(self, matrix: sp.csr_matrix, doc_ids: Sequence[str], chunk_size: int = 500) -> int:
        """Bulk-index CSR rows under ``doc_ids`` (re-adding an id replaces it); returns the count indexed."""
        from opensearchpy import helpers

        matrix = sp.csr_matrix(matrix)
        indexed, _ = helpers.bulk(self.client, bulk_actions(self.index, self.field, self.names, matrix, doc_ids),
                                  chunk_size=chunk_size)
        self.client.indices.refresh(index=self.index)
        return indexed

    def __len__(self) -> int:
        return int(self.client.count(index=self.index)["count"])

    def query_tokens(self, term_ids: np.ndarray, weights: np.ndarray) -> dict[str, float]:
        """The query as ``{feature name: weight}`` (non-positive weights dropped)."""
        return self.names.features(term_ids, weights)

    def query_body(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> dict[str, Any] | None:
        """The search body of this index's query type; ``None`` when no token can match."""
        tokens = self.query_tokens(term_ids, weights)
        if self.query_type == "rank_feature":
            body = rank_feature_body(self.field, tokens, k)
            return body if body["query"]["bool"]["should"] else None  # an empty bool matches everything
        return neural_sparse_body(self.field, tokens, k) if tokens else None

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        body = self.query_body(term_ids, weights, k)
        if body is None:
            return _no_hits()
        return _hits(self.client.search(index=self.index, body=body))

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        """All queries in one ``_msearch`` round trip."""
        bodies = [self.query_body(ids, weights, k) for ids, weights in queries]
        request: list[dict[str, Any]] = []
        for body in bodies:
            if body is not None:
                request += [{"index": self.index}, body]
        responses = iter(self.client.msearch(body=request)["responses"] if request else [])
        results = []
        for body in bodies:
            if body is None:
                results.append(_no_hits())
                continue
            response = next(responses)
            if "error" in response:
                raise IdfspladeError(f"OpenSearch search failed: {response['error']}")
            results.append(_hits(response))
        return results


def _hits(response: Mapping[str, Any]) -> SearchHits:
    hits = response["hits"]["hits"]
    return SearchHits([h["_id"] for h in hits], np.asarray([h["_score"] for h in hits], dtype=np.float32))


def _no_hits() -> SearchHits:
    return SearchHits([], np.zeros(0, dtype=np.float32))
