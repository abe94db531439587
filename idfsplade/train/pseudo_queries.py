"""Pseudo-queries cut from a document, for training on a corpus without queries (``idfsplade adapt``,
:func:`~idfsplade.train.examples.build_weak`): one registered generator per kind.

A generator takes ``(document, rng, word_idf)`` and returns ``(pseudo-query, positive passage)``, or
``None`` where it does not apply (no title, a one-sentence document...); :func:`pseudo_queries` then
cuts the query text out of the passage. Adding one is a function and its registration::

    from idfsplade.train.pseudo_queries import register_pseudo_query, remove_text

    @register_pseudo_query("last_sentence")
    def last_sentence(doc, rng, idf):
        sentences = [s for s in doc.text.split(". ") if len(s.split()) >= 3]
        return (sentences[-1], remove_text(doc.text, sentences[-1])) if len(sentences) > 1 else None

after which ``data.pseudo_queries: [last_sentence, ...]`` is a valid run config (the config's choices
are this registry). The registry follows ir_measures' one registration per measure.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from idfsplade.data import Document, document_text

PseudoQueryGenerator = Callable[[Document, np.random.Generator, "WordIdf | None"], "tuple[str, str] | None"]

# name -> generator, in registration order (the order `data.pseudo_queries` lists them in errors)
PSEUDO_QUERY_GENERATORS: dict[str, PseudoQueryGenerator] = {}


def register_pseudo_query(name: str) -> Callable[[PseudoQueryGenerator], PseudoQueryGenerator]:
    """Register the decorated function as the pseudo-query generator ``name``."""

    def register(generator: PseudoQueryGenerator) -> PseudoQueryGenerator:
        if name in PSEUDO_QUERY_GENERATORS:
            raise KeyError(f"a pseudo-query generator named {name!r} is already registered")
        PSEUDO_QUERY_GENERATORS[name] = generator
        return generator

    return register


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s' default token pattern

DEFAULT_PSEUDO_QUERIES = ("title", "sentence", "span", "terms")
MIN_QUERY_WORDS = 3
MAX_QUERY_WORDS = 64  # a longer "sentence" is a paragraph without punctuation: not a query
MIN_PASSAGE_WORDS = 8  # what must be left of the document once the pseudo-query is cut out
SPAN_WORDS = (6, 12)
TERMS = (2, 5)  # a terms pseudo-query has 2-5 words...
TERM_CANDIDATES = 8  # ...drawn (probability ∝ idf) from the sentence's 8 highest-IDF words


def _squash(text: str) -> str:
    return " ".join(text.split())


def remove_text(passage: str, piece: str) -> str:
    """``passage`` with every occurrence of ``piece`` cut out (case-insensitive, whitespace
    normalised), repeated until none is left — so ``piece`` is never a substring of the result."""
    piece = _squash(piece)
    passage = _squash(passage)
    if not piece:
        return passage
    pattern = re.compile(re.escape(piece), re.IGNORECASE)
    while True:
        cut = _squash(pattern.sub(" ", passage))
        if cut == passage:
            return cut
        passage = cut


class WordIdf:
    """Word-level IDF of a corpus (bm25s' token pattern, lower-cased, bm25s' English stop words dropped),
    ``ln(1 + (N - df + 0.5) / (df + 0.5))`` as :class:`~idfsplade.idf.IdfTable` — for the ``terms``
    generator, which needs words, not WordPiece tokens. (bm25s' tokenizer gives tokens but no document
    frequencies, and :class:`IdfTable` counts WordPiece ids: the count is this loop.)"""

    def __init__(self, texts) -> None:
        from bm25s.stopwords import STOPWORDS_EN

        self.stopwords = set(STOPWORDS_EN)
        df: dict[str, int] = {}
        n = 0
        for text in texts:
            n += 1
            for word in set(self.words(text)):
                df[word] = df.get(word, 0) + 1
        self.idf = {w: float(np.log1p((n - d + 0.5) / (d + 0.5))) for w, d in df.items()}

    def words(self, text: str) -> list[str]:
        return [w for w in _WORD.findall(text.lower()) if w not in self.stopwords]


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(_squash(text)) if s]


def _query_sized(sentence: str) -> bool:
    return MIN_QUERY_WORDS <= len(sentence.split()) <= MAX_QUERY_WORDS


@register_pseudo_query("title")
def _pq_title(doc: Document, rng: np.random.Generator, idf: WordIdf | None) -> tuple[str, str] | None:
    title = _squash(doc.title)
    return (title, remove_text(doc.text, title)) if _query_sized(title) else None


@register_pseudo_query("first_sentence")
def _pq_first_sentence(doc: Document, rng: np.random.Generator, idf: WordIdf | None) -> tuple[str, str] | None:
    sentences = _sentences(doc.text)
    if len(sentences) < 2 or not _query_sized(sentences[0]):
        return None
    return sentences[0], remove_text(document_text(doc), sentences[0])


def _random_sentence(doc: Document, rng: np.random.Generator) -> str | None:
    sentences = _sentences(doc.text)
    fitting = [s for s in sentences if _query_sized(s)]
    if len(sentences) < 2 or not fitting:
        return None
    return fitting[int(rng.integers(len(fitting)))]


@register_pseudo_query("sentence")
def _pq_sentence(doc: Document, rng: np.random.Generator, idf: WordIdf | None) -> tuple[str, str] | None:
    sentence = _random_sentence(doc, rng)
    return None if sentence is None else (sentence, remove_text(document_text(doc), sentence))


@register_pseudo_query("span")
def _pq_span(doc: Document, rng: np.random.Generator, idf: WordIdf | None) -> tuple[str, str] | None:
    words = _squash(doc.text).split()
    n = int(rng.integers(SPAN_WORDS[0], SPAN_WORDS[1] + 1))
    if len(words) < n + MIN_PASSAGE_WORDS:
        return None
    start = int(rng.integers(len(words) - n + 1))
    span = " ".join(words[start:start + n])
    return span, remove_text(document_text(doc), span)


@register_pseudo_query("terms")
def _pq_terms(doc: Document, rng: np.random.Generator, idf: WordIdf | None) -> tuple[str, str] | None:
    """Keyword query: 2-5 of a random sentence's highest-IDF words (in their order); the sentence is cut
    out of the passage, so the words match only where the rest of the document repeats them."""
    sentence = _random_sentence(doc, rng)
    if sentence is None or idf is None:
        return None
    words = list(dict.fromkeys(idf.words(sentence)))
    if len(words) < TERMS[0]:
        return None
    ranked = sorted(words, key=lambda w: -idf.idf.get(w, 0.0))[:TERM_CANDIDATES]
    weights = np.array([idf.idf.get(w, 0.0) for w in ranked]) + 1e-9
    n = min(int(rng.integers(TERMS[0], TERMS[1] + 1)), len(ranked))
    picked = set(rng.choice(len(ranked), size=n, replace=False, p=weights / weights.sum()).tolist())
    query = " ".join(w for w in words if w in {ranked[i] for i in picked})
    return query, remove_text(document_text(doc), sentence)


def pseudo_queries(doc: Document, generators: tuple[str, ...] | list[str], rng: np.random.Generator,
                   idf: WordIdf | None = None, per_doc: int = 1) -> list[tuple[str, str, str]]:
    """Up to ``per_doc`` ``(generator, pseudo-query, positive passage)`` triples for one document: the
    generators are tried in a random order (``rng``) and those that do not apply (no title, one
    sentence, too short) are skipped. The pseudo-query is never a substring of its passage."""
    made = []
    for name in rng.permutation(list(generators)).tolist():
        pair = PSEUDO_QUERY_GENERATORS[name](doc, rng, idf)
        if pair is None:
            continue
        query, passage = _squash(pair[0]), remove_text(pair[1], pair[0])  # e.g. terms repeated verbatim
        if len(passage.split()) < MIN_PASSAGE_WORDS or not query:
            continue
        made.append((name, query, passage))
        if len(made) == per_doc:
            break
    return made
