"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

Everything streams and every record is validated: a malformed line, a missing field, a duplicate id
or a qrel naming an unknown id raises :class:`~idfsplade.errors.InputError` naming the file, the line
and the field. Nothing is dropped silently. Unlike BEIR's ``ignore_identical_ids``, a qrel whose query
id equals its document id is kept: several classic collections number both from 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from idfsplade.errors import InputError


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Query:
    id: str
    text: str


def document_text(doc: Document) -> str:
    """Title + " " + text, as BEIR's retrievers do; no leading space when there is no title."""
    return f"{doc.title} {doc.text}" if doc.title else doc.text


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line of a UTF-8 file, without its line break.

    Decoded line by line, so invalid UTF-8 is an :class:`InputError` naming the line; a UTF-8
    byte-order mark at the start (files saved by Windows tools) is skipped.
    """
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("expected a file, got a folder", path=path)
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputError(f"invalid UTF-8 (byte {exc.start + 1} of the line: {raw[exc.start:exc.start + 4]!r})",
                                 path=path, line=lineno) from None


def iter_jsonl(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; a malformed line or a missing ``required``
    field is an :class:`InputError` naming the file, line and field."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg})", path=path, line=lineno) from None
        if not isinstance(record, dict):
            raise InputError("expected a JSON object", path=path, line=lineno)
        for name in required:
            if name not in record:
                raise InputError("missing field", path=path, line=lineno, field=name)
        yield lineno, record


def _string_field(record: dict, name: str, path: Path, lineno: int, required: bool = True) -> str:
    if name not in record:
        if required:
            raise InputError("missing field", path=path, line=lineno, field=name)
        return ""
    value = record[name]
    if value is None and not required:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "_id":
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", path=path, line=lineno, field=name)
    if name == "_id" and not value.strip():
        raise InputError("empty id", path=path, line=lineno, field=name)
    return value


def iter_corpus(path: str | Path) -> Iterator[Document]:
    """Stream documents from a ``corpus.jsonl``; ``_id`` and ``text`` are required, ``title`` optional."""
    path = Path(path)
    seen: set[str] = set()
    for lineno, record in iter_jsonl(path):
        doc_id = _string_field(record, "_id", path, lineno)
        if doc_id in seen:
            raise InputError(f"duplicate document id {doc_id!r}", path=path, line=lineno, field="_id")
        seen.add(doc_id)
        yield Document(doc_id, _string_field(record, "title", path, lineno, required=False),
                       _string_field(record, "text", path, lineno))
    if not seen:
        raise InputError("the corpus is empty (no documents)", path=path)


def iter_queries(path: str | Path) -> Iterator[Query]:
    """Stream queries from a ``queries.jsonl``; ``_id`` and ``text`` are required."""
    path = Path(path)
    seen: set[str] = set()
    for lineno, record in iter_jsonl(path):
        query_id = _string_field(record, "_id", path, lineno)
        if query_id in seen:
            raise InputError(f"duplicate query id {query_id!r}", path=path, line=lineno, field="_id")
        seen.add(query_id)
        yield Query(query_id, _string_field(record, "text", path, lineno))
    if not seen:
        raise InputError("no queries in this file", path=path)


def load_qrels(path: str | Path, query_ids: set[str] | None = None,
               doc_ids: set[str] | None = None) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id  corpus-id  score``, header optional).

    When ``query_ids`` / ``doc_ids`` are given, a qrel naming an id outside them is an error.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if lineno == 1 and parts[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        if len(parts) != 3:
            raise InputError(f"expected 3 tab-separated columns, got {len(parts)}", path=path, line=lineno)
        qid, did, score = (p.strip() for p in parts)
        try:
            value = float(score)
        except ValueError:
            raise InputError(f"score {score!r} is not a number", path=path, line=lineno, field="score") from None
        if not value.is_integer():  # trec_eval grades are integers: never floor 0.5 to 0 silently
            raise InputError(f"relevance grade {score!r} is not a whole number", path=path, line=lineno,
                             field="score")
        relevance = int(value)
        if query_ids is not None and qid not in query_ids:
            raise InputError(f"unknown query id {qid!r}", path=path, line=lineno, field="query-id")
        if doc_ids is not None and did not in doc_ids:
            raise InputError(f"unknown document id {did!r}", path=path, line=lineno, field="corpus-id")
        if did in qrels.get(qid, {}):
            raise InputError(f"duplicate judgment for ({qid!r}, {did!r})", path=path, line=lineno)
        qrels.setdefault(qid, {})[did] = relevance
    if not qrels:
        raise InputError("no relevance judgments in this file", path=path)
    return qrels


class BeirDataset:
    """A BEIR folder, named by its path. Loads lazily; ``validate`` cross-checks ids."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError("dataset folder not found", path=self.path)
        self.corpus_path = self.path / "corpus.jsonl"
        self.queries_path = self.path / "queries.jsonl"

    @property
    def name(self) -> str:
        return self.path.name

    def qrels_path(self, split: str) -> Path:
        return self.path / "qrels" / f"{split}.tsv"

    def iter_corpus(self) -> Iterator[Document]:
        return iter_corpus(self.corpus_path)

    def doc_ids(self) -> list[str]:
        return [d.id for d in self.iter_corpus()]

    def queries(self) -> dict[str, str]:
        return {q.id: q.text for q in iter_queries(self.queries_path)}

    def qrels(self, split: str = "test", doc_ids: set[str] | None = None) -> dict[str, dict[str, int]]:
        """Qrels of ``split``, checked against the query ids and (when given) the document ids."""
        return load_qrels(self.qrels_path(split), query_ids=set(self.queries()), doc_ids=doc_ids)

    def split_queries(self, split: str = "test", doc_ids: set[str] | None = None
                      ) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        """The queries judged in ``split`` and their qrels."""
        queries = self.queries()
        qrels = load_qrels(self.qrels_path(split), query_ids=set(queries), doc_ids=doc_ids)
        return {qid: queries[qid] for qid in qrels}, qrels
