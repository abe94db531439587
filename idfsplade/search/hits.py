"""Hits a person can read: each document's title and a snippet with the matching tokens marked, and
why it matched — the query tokens with their ``idf(t) × w_d(t)`` contributions, which sum to the score.

Shared by ``idfsplade search`` and the service, so both show the same thing. Needs only the query
side (a ``tokenizers`` tokenizer and the idf array), the exact index and, for titles and snippets,
the index's document store (:mod:`idfsplade.data.store`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tokenizers import Tokenizer

from idfsplade.data.store import DocumentStore
from idfsplade.index.exact import InvertedIndex
from idfsplade.query.encoder import SparseQuery
from idfsplade.search.retriever import InferenceFreeRetriever

SNIPPET_CHARS = 240
_BLANKS = str.maketrans({"\n": " ", "\r": " ", "\t": " ", "\v": " ", "\f": " "})  # one char for one: offsets hold


@dataclass(frozen=True)
class Contribution:
    """One query token's share of a score: ``contribution = idf × weight`` (the document's ``w_d(t)``)."""

    token: str
    idf: float
    weight: float
    contribution: float


@dataclass(frozen=True)
class Hit:
    rank: int
    id: str
    score: float
    title: str | None = None
    snippet: str | None = None
    title_highlights: list[tuple[int, int]] = field(default_factory=list)  # [start, end) in title
    highlights: list[tuple[int, int]] = field(default_factory=list)  # [start, end) in snippet
    explanation: list[Contribution] | None = None  # best first; sums to score (float rounding aside)


class HitBuilder:
    """Searches like ``retriever.search`` and dresses the hits with documents and explanations."""

    def __init__(self, retriever: InferenceFreeRetriever, store: DocumentStore | None = None,
                 snippet_chars: int = SNIPPET_CHARS) -> None:
        self.retriever = retriever
        self.store = store
        self.snippet_chars = snippet_chars
        # Documents are tokenized by the query side's tokenizer, which truncates at the model's max length:
        # in pieces short enough never to be cut (WordPiece gives at most one token per character), split
        # at spaces, where the pre-tokenizer splits anyway. (A private untruncated copy would cost ~0.1 s
        # of startup, a third of `idfsplade search`'s own work.)
        self._tokenizer: Tokenizer = retriever.query_encoder.tokenizer
        max_length = retriever.query_encoder.max_length
        self._piece_chars = max(16, max_length - 2) if max_length else None

    @property
    def can_explain(self) -> bool:
        return isinstance(self.retriever.index, InvertedIndex)

    def search(self, text: str, k: int = 10, documents: bool = True, explain: bool = False
               ) -> tuple[list[Hit], SparseQuery]:
        encoder, index = self.retriever.query_encoder, self.retriever.index
        query = encoder.encode(text)
        hits = index.search(query.ids, query.weights, k)
        rows = hits.rows
        need_weights = explain or (documents and self.store is not None)
        out = []
        for rank, (doc_id, score) in enumerate(zip(hits.ids, hits.scores), 1):
            matched, explanation = set(), None
            if need_weights and self.can_explain:
                row = int(rows[rank - 1]) if rows is not None else index.row_of(doc_id)
                weights = index.term_weights(row, query.ids)
                contributions = query.weights.astype(np.float64) * weights.astype(np.float64)
                order = [i for i in np.argsort(-contributions, kind="stable") if weights[i] != 0]
                matched = {int(query.ids[i]) for i in order}
                if explain:
                    explanation = [Contribution(encoder.token(query.ids[i]), float(query.weights[i]),
                                                float(weights[i]), float(contributions[i])) for i in order]
            title = snippet = None
            title_marks: list[tuple[int, int]] = []
            marks: list[tuple[int, int]] = []
            if documents and self.store is not None:
                row = int(rows[rank - 1]) if rows is not None else index.row_of(doc_id)
                doc = self.store.get(row)
                title = doc.title.translate(_BLANKS)
                title_marks = self._marks(title, matched)
                snippet, marks = self._snippet(doc.text.translate(_BLANKS), matched)
            out.append(Hit(rank, doc_id, float(score), title, snippet, title_marks, marks, explanation))
        return out, query

    def _marks(self, text: str, matched: set[int]) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text`` that are in ``matched``, adjacent ones merged."""
        if not text or not matched:
            return []
        starts = self._pieces(text)
        encodings = self._tokenizer.encode_batch([text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])],
                                                 add_special_tokens=False)
        spans: list[tuple[int, int]] = []
        for shift, encoding in zip(starts, encodings):
            for token_id, (start, end) in zip(encoding.ids, encoding.offsets):
                if token_id in matched and end > start:
                    start, end = start + shift, end + shift
                    if spans and start <= spans[-1][1]:
                        spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
                    else:
                        spans.append((start, end))
        return spans

    def _pieces(self, text: str) -> list[int]:
        """Start offsets of pieces of at most ``_piece_chars`` characters, cut after a space when there is one."""
        size = self._piece_chars
        if size is None or len(text) <= size:
            return [0]
        starts = [0]
        while len(text) - starts[-1] > size:
            limit = starts[-1] + size
            space = text.rfind(" ", starts[-1] + 1, limit)
            starts.append(space + 1 if space > starts[-1] else limit)
        return starts

    def _snippet(self, text: str, matched: set[int]) -> tuple[str, list[tuple[int, int]]]:
        """The window of ``text`` (about ``snippet_chars``) holding the most matched tokens, cut at spaces,
        with ``…`` where it was cut, and the matched spans within it."""
        spans = self._marks(text, matched)
        width = self.snippet_chars
        if len(text) <= width:
            return text, spans
        # the window start (at a span) that covers the most spans
        best, best_count, j = 0, 0, 0
        for i, (start, _) in enumerate(spans):
            while j < len(spans) and spans[j][1] <= start + width:
                j += 1
            if j - i > best_count:
                best, best_count = i, j - i
        start = max(0, spans[best][0] - width // 5) if spans else 0
        if start > 0:
            space = text.find(" ", start, start + 30)
            start = space + 1 if space >= 0 else start
        end = min(len(text), start + width)
        if end < len(text):
            space = text.rfind(" ", end - 30, end)
            end = space if space > start else end
        prefix = "… " if start > 0 else ""
        suffix = " …" if end < len(text) else ""
        shift = len(prefix) - start
        inside = [(max(s, start) + shift, min(e, end) + shift) for s, e in spans if e > start and s < end]
        return prefix + text[start:end] + suffix, inside
