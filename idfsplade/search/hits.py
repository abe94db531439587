"""Hits a person can read: each document's title and a snippet with the matching tokens marked, and
why it matched — the query tokens with their ``idf(t) × w_d(t)`` contributions, which sum to the score
(in hybrid search, to the sparse part's score; each hit then carries both parts' scores beside the fused one).

Shared by ``idfsplade search`` and the service, so both show the same thing. Needs only the query
side (a ``tokenizers`` tokenizer and the idf array), the exact index and, for titles and snippets,
the index's document store (:mod:`idfsplade.data.store`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from tokenizers import Tokenizer

from idfsplade.data.store import DocumentStore
from idfsplade.index.exact import InvertedIndex
from idfsplade.query.encoder import SparseQuery
from idfsplade.search.hybrid import HybridRetriever
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
    explanation: list[Contribution] | None = None  # best first; sums to the sparse score (float rounding aside)
    # Hybrid search only: each part's score before fusion, None where that part did not return the document.
    lexical_score: float | None = None
    sparse_score: float | None = None


class HitBuilder:
    """Searches like ``retriever.search`` and dresses the hits with documents and explanations."""

    def __init__(self, retriever: InferenceFreeRetriever, store: DocumentStore | None = None,
                 snippet_chars: int = SNIPPET_CHARS, hybrid: HybridRetriever | None = None) -> None:
        if hybrid is not None and hybrid.sparse is not retriever:
            raise ValueError("the hybrid retriever's sparse part must be `retriever`")
        self.retriever = retriever
        self.hybrid = hybrid  # fuse with its lexical part; explanations stay those of the sparse part
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
        lexical_scores = sparse_scores = None
        if self.hybrid is None:
            hits = index.search(query.ids, query.weights, k)
        else:
            hits, lexical_scores, sparse_scores = self.hybrid.search_parts(text, k, query)  # tokenized once
        with_documents = documents and self.store is not None
        weights = None
        if (explain or with_documents) and self.can_explain and hits.ids:
            rows = hits.rows if hits.rows is not None else np.array([index.row_of(d) for d in hits.ids])
            weights = index.term_weights(rows, query.ids)  # (hits, query terms)
        finder = _Finder(self._tokenizer, query.ids) if with_documents else None
        out = []
        for rank, (doc_id, score) in enumerate(zip(hits.ids, hits.scores), 1):
            matched, explanation = set(), None
            if weights is not None:
                w = weights[rank - 1]
                contributions = query.weights.astype(np.float64) * w.astype(np.float64)
                order = [i for i in np.argsort(-contributions, kind="stable") if w[i] != 0]
                matched = {int(query.ids[i]) for i in order}
                if explain:
                    explanation = [Contribution(encoder.token(query.ids[i]), float(query.weights[i]),
                                                float(w[i]), float(contributions[i])) for i in order]
            title = snippet = None
            title_marks: list[tuple[int, int]] = []
            marks: list[tuple[int, int]] = []
            if with_documents:
                row = int(hits.rows[rank - 1]) if hits.rows is not None else index.row_of(doc_id)
                doc = self.store.get(row)
                title = doc.title.translate(_BLANKS)
                title_marks = self._marks(title, matched)
                snippet, marks = self._snippet(doc.text.translate(_BLANKS), matched, finder)
            parts = {} if self.hybrid is None else {"lexical_score": lexical_scores.get(doc_id),
                                                    "sparse_score": sparse_scores.get(doc_id)}
            out.append(Hit(rank, doc_id, float(score), title, snippet, title_marks, marks, explanation, **parts))
        return out, query

    def _marks(self, text: str, matched: set[int]) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text`` that are in ``matched``, adjacent ones merged."""
        if not text or not matched:
            return []
        starts = self._pieces(text)
        # encode, not encode_batch: the batch call hands the pieces to a Rayon thread pool, whose idle
        # spinning cost the service ~10 ms of CPU per request (and requests already run in parallel)
        encodings = [self._tokenizer.encode(text[a:b], add_special_tokens=False)
                     for a, b in zip(starts, starts[1:] + [len(text)])]
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

    def _snippet(self, text: str, matched: set[int], finder: _Finder) -> tuple[str, list[tuple[int, int]]]:
        """The window of ``text`` (about ``snippet_chars``) holding the most matched tokens, cut at spaces,
        with ``…`` where it was cut, and the matched spans within it.

        The window is chosen from where the matched tokens' strings occur in the lower-cased text (a
        whole-word token at a word start, a ``##`` piece inside a word): approximate, but no tokenizer
        pass over the whole document, which cost ~0.4 ms per hit. Only the window (and the title) is
        tokenized, so its highlights are exact: the window is cut at spaces, where the tokenizer splits
        anyway."""
        width = self.snippet_chars
        if len(text) <= width:
            return text, self._marks(text, matched)
        positions = finder.positions(text, matched)
        # the window start (at an occurrence) that covers the most occurrences
        best, best_count, j = 0, 0, 0
        for i, start in enumerate(positions):
            while j < len(positions) and positions[j] < start + width - 10:
                j += 1
            if j - i > best_count:
                best, best_count = i, j - i
        start = max(0, positions[best] - width // 5) if positions else 0
        if start > 0:
            space = text.find(" ", start, start + 30)
            start = space + 1 if space >= 0 else start
        end = min(len(text), start + width)
        if end < len(text):
            space = text.rfind(" ", end - 30, end)
            end = space if space > start else end
        prefix = "… " if start > 0 else ""
        suffix = " …" if end < len(text) else ""
        marks = self._marks(text[start:end], matched)
        return prefix + text[start:end] + suffix, [(a + len(prefix), b + len(prefix)) for a, b in marks]



class _Finder:
    """Where a query's tokens occur in a text, approximately and without the tokenizer: one regex per
    query over the tokens' strings (a whole-word token at a word start, a ``##`` piece inside a word),
    matched against the lower-cased text, then kept for the tokens a hit matched."""

    def __init__(self, tokenizer: Tokenizer, token_ids: np.ndarray) -> None:
        self.surfaces: dict[str, set[int]] = {}  # lower-cased string -> the token ids spelled so
        words, pieces = set(), set()
        for token_id in map(int, token_ids):
            token = tokenizer.id_to_token(token_id) or ""
            if token.startswith("##") and len(token) > 3:
                pieces.add(token[2:])
                self.surfaces.setdefault(token[2:], set()).add(token_id)
            elif token and not token.startswith("##") and (len(token) > 1 or token.isalnum()):
                words.add(token)
                self.surfaces.setdefault(token, set()).add(token_id)
        parts = []
        if words:
            parts.append(r"(?<!\w)(?:" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + ")")
        if pieces:
            parts.append(r"(?<=\w)(?:" + "|".join(map(re.escape, sorted(pieces, key=len, reverse=True))) + ")")
        self.pattern = re.compile("|".join(parts)) if parts else None

    def positions(self, text: str, matched: set[int]) -> list[int]:
        """Sorted character offsets in ``text`` where one of the ``matched`` tokens' strings occurs."""
        if self.pattern is None or not matched:
            return []
        return [m.start() for m in self.pattern.finditer(text.lower()) if self.surfaces[m.group()] & matched]
