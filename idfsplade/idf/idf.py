"""IDF as the paper defines it: ``ln(1 + (N - df + 0.5) / (df + 0.5))`` over WordPiece ids.

``df`` counts each token once per document (special tokens excluded). Counting streams the corpus in
batches through the tokenizer's fast batch encoder, so memory is one int64 array of vocabulary size
whatever the corpus size.

The file format is OpenSearch's ``idf.json``: ``{token string: weight}``, the file published sparse
checkpoints and ML-Commons' ``SPARSE_TOKENIZE`` models ship. A token absent from the file gets
``MISSING_TOKEN_IDF = 1.0``, as OpenSearch does (sentence-transformers' ``SparseStaticEmbedding.from_json``
would give it 0 instead, which silently drops the token from queries).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from idfsplade.errors import InputError
from idfsplade.atomic import atomic_write_json

MISSING_TOKEN_IDF = 1.0


def special_token_ids(tokenizer) -> list[int]:
    return sorted(set(tokenizer.all_special_ids))


def compute_document_frequency(texts: Iterable[str], tokenizer, batch_size: int = 1024,
                               max_length: int | None = None, progress=None) -> tuple[np.ndarray, int]:
    """Return ``(df, n_docs)``; ``df[j]`` = number of texts containing WordPiece id ``j`` at least once.

    ``max_length`` truncates like the document encoder does (``None`` counts the whole text).
    """
    vocab_size = len(tokenizer)
    df = np.zeros(vocab_size, dtype=np.int64)
    n_docs = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal n_docs
        encoded = tokenizer(batch, add_special_tokens=False, truncation=max_length is not None,
                            max_length=max_length, return_attention_mask=False,
                            return_token_type_ids=False, verbose=False)["input_ids"]
        for ids in encoded:
            if ids:
                df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
        n_docs += len(batch)
        if progress is not None:
            progress(len(batch))
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    df[special_token_ids(tokenizer)] = 0
    return df, n_docs


def idf_from_df(df: np.ndarray, n_docs: int) -> np.ndarray:
    """The paper's (BM25's) IDF; a token never seen gets the largest value, ``ln(1 + (N + 0.5) / 0.5)``."""
    df = df.astype(np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


class IdfTable:
    """IDF weights aligned to a tokenizer's vocabulary: ``weights[token_id]``.

    Special tokens carry 0 (they never occur in an inference-free query, which is tokenized
    without them). Built from a corpus with :meth:`from_corpus` or read with :meth:`load`.
    """

    def __init__(self, weights: np.ndarray, tokenizer, n_docs: int | None = None) -> None:
        if weights.shape != (len(tokenizer),):
            raise ValueError(f"weights have shape {weights.shape}, vocabulary has {len(tokenizer)} tokens")
        self.weights = weights.astype(np.float32)
        self.tokenizer = tokenizer
        self.n_docs = n_docs

    @classmethod
    def from_corpus(cls, texts: Iterable[str], tokenizer, **kwargs) -> IdfTable:
        df, n_docs = compute_document_frequency(texts, tokenizer, **kwargs)
        if n_docs == 0:
            raise InputError("cannot compute IDF over an empty corpus")
        weights = idf_from_df(df, n_docs)
        weights[special_token_ids(tokenizer)] = 0.0
        return cls(weights, tokenizer, n_docs=n_docs)

    def to_dict(self) -> dict[str, float]:
        """``{token: weight}`` for every non-special token of the vocabulary."""
        specials = set(special_token_ids(self.tokenizer))
        id_to_token = {i: t for t, i in self.tokenizer.get_vocab().items()}
        return {id_to_token[i]: round(float(self.weights[i]), 6) for i in range(len(self.weights))
                if i not in specials and i in id_to_token}

    def save(self, path: str | Path) -> None:
        """Write OpenSearch's ``idf.json`` (token → weight), atomically."""
        atomic_write_json(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: str | Path, tokenizer) -> IdfTable:
        """Read an ``idf.json``; vocabulary tokens absent from it get :data:`MISSING_TOKEN_IDF`."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError("file not found", path=path) from None
        except IsADirectoryError:
            raise InputError("expected an idf.json file, got a folder", path=path) from None
        return cls.from_dict(decode_idf_json(data, path), tokenizer, source=path)

    @classmethod
    def from_dict(cls, table: dict[str, float], tokenizer, source: str | Path | None = None) -> IdfTable:
        weights = weights_from_table(table, len(tokenizer), tokenizer.get_vocab().get,
                                     special_token_ids(tokenizer), source)
        return cls(weights, tokenizer)


def decode_idf_json(data: bytes, source: str | Path | None = None) -> dict:
    """The ``{token: weight}`` object of an ``idf.json``'s bytes (a byte-order mark is fine); errors
    name the file and line. Shared by :meth:`IdfTable.load` and the torch-free query side."""
    try:
        table = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 (byte {exc.start})", path=source) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg})", path=source, line=exc.lineno) from None
    if not isinstance(table, dict):
        raise InputError("expected a JSON object {token: weight}", path=source)
    return table


def weights_from_table(table: dict, vocab_size: int, token_to_id: Callable[[str], int | None],
                       special_ids: Iterable[int], source: str | Path | None = None) -> np.ndarray:
    """Vocabulary-sized float32 weights from ``{token: weight}``: a token absent from the table weighs
    :data:`MISSING_TOKEN_IDF`, a table token outside the vocabulary is ignored, special tokens weigh 0.
    Vectorised (it sits on the cold start of ``idfsplade search``)."""
    for token, weight in table.items():
        if type(weight) is not float and type(weight) is not int:  # noqa: E721 - bool is not a weight
            raise InputError(f"weight must be a number, got {weight!r}", path=source, field=token)
    weights = np.full(vocab_size, MISSING_TOKEN_IDF, dtype=np.float32)
    pairs = [(i, w) for i, w in zip(map(token_to_id, table), table.values()) if i is not None]
    if pairs:
        ids, values = zip(*pairs)
        weights[list(ids)] = values
    weights[list(special_ids)] = 0.0
    return weights
