"""The query side of an inference-free model: tokenize, unique ids, weight = idf. No model call, no torch.

This is what ``SparseStaticEmbedding`` computes (tokenizer without special tokens, truncation at the
model's max length, presence × weight), re-done on the raw Rust tokenizer (the ``tokenizers``
library) and a numpy weight array: it sits on the search hot path, where a ``SparseEncoder`` call
costs milliseconds of Python and torch overhead for microseconds of work, and the service and
``idfsplade search`` should not need torch at all (:mod:`idfsplade.query.artefact` loads it from
``tokenizer.json`` + ``idf.json``, OpenSearch's ``SPARSE_TOKENIZE`` pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from idfsplade.errors import InputError

_NO_LIMIT = 1_000_000  # transformers' "no max length" is a huge int; anything above is no truncation


@dataclass(frozen=True)
class SparseQuery:
    """A sparse query vector: sorted unique term ids and their weights."""

    ids: np.ndarray  # int32, sorted, unique
    weights: np.ndarray  # float32


def special_ids(tokenizer: Tokenizer) -> list[int]:
    """Ids of the tokenizer's special added tokens ([PAD], [UNK], [CLS], ...), from ``tokenizer.json``."""
    return sorted(i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special)


class QueryEncoder:
    """Turn query text into a :class:`SparseQuery` with a tokenizer and a per-token weight array.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` (its own truncation is kept unless ``max_length`` is
    given) or a ``transformers`` fast tokenizer (truncated at ``max_length``, else its
    ``model_max_length``). Either way the encoder works on a private copy (unless ``copy=False``
    hands a ``tokenizers.Tokenizer`` over), so setting truncation never touches the caller's.

    ``prune_ratio`` (off by default) drops the query's tokens whose weight is below ``prune_ratio ×``
    its largest weight: OpenSearch's ``max_ratio`` pruning applied to the query. Low-IDF tokens are
    the frequent ones with the longest postings lists, so pruning them cuts search cost for a small
    loss in ranking quality (``benchmarks/pruning.py`` measures both).
    """

    def __init__(self, tokenizer, weights: np.ndarray, max_length: int | None = None,
                 prune_ratio: float | None = None, copy: bool = True) -> None:
        if prune_ratio is not None and not 0.0 <= prune_ratio <= 1.0:
            raise InputError(f"prune_ratio must be in [0, 1], got {prune_ratio}", field="prune_ratio")
        self.prune_ratio = prune_ratio
        self.weights = np.asarray(weights, dtype=np.float32)
        self.vocab_size = len(self.weights)
        if isinstance(tokenizer, Tokenizer):
            # copy=False: the caller hands its tokenizer over (a loader that just parsed it: saves ~0.1 s)
            self._tokenizer = Tokenizer.from_str(tokenizer.to_str()) if copy else tokenizer
        else:  # transformers' PreTrainedTokenizerFast
            self._tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
            max_length = max_length or tokenizer.model_max_length or _NO_LIMIT
        self._tokenizer.no_padding()
        if max_length is not None:
            if max_length < _NO_LIMIT:
                self._tokenizer.enable_truncation(max_length)
            else:
                self._tokenizer.no_truncation()

    @property
    def tokenizer(self) -> Tokenizer:
        """The (private) Rust tokenizer, truncation set, no padding: what :meth:`to_json` writes."""
        return self._tokenizer

    @property
    def max_length(self) -> int | None:
        truncation = self._tokenizer.truncation
        return truncation["max_length"] if truncation else None

    def with_prune_ratio(self, prune_ratio: float | None) -> QueryEncoder:
        return QueryEncoder(self._tokenizer, self.weights, prune_ratio=prune_ratio)

    def encode(self, text: str) -> SparseQuery:
        ids = np.sort(np.asarray(self._tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int32))
        # sorted unique ids; not np.unique, which in numpy 2.4 imports numpy.ma (~80 ms at cold start)
        ids = ids[(ids < self.vocab_size) & np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids
        weights = self.weights[ids]
        keep = weights != 0
        if self.prune_ratio and len(weights):
            keep &= weights >= self.prune_ratio * weights.max()
        return SparseQuery(ids[keep], weights[keep])

    def encode_batch(self, texts: list[str]) -> list[SparseQuery]:
        return [self.encode(t) for t in texts]

    def to_csr(self, queries: list[SparseQuery]):
        import scipy.sparse as sp  # not on the search path: only evaluation statistics need a matrix

        indptr = np.zeros(len(queries) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(q.ids) for q in queries])
        indices = np.concatenate([q.ids for q in queries]) if queries else np.zeros(0, np.int32)
        data = np.concatenate([q.weights for q in queries]) if queries else np.zeros(0, np.float32)
        return sp.csr_matrix((data, indices, indptr), shape=(len(queries), self.vocab_size))

    def token(self, token_id: int) -> str:
        return self._tokenizer.id_to_token(int(token_id))

    def decode(self, query: SparseQuery) -> dict[str, float]:
        return {self.token(i): float(w) for i, w in zip(query.ids, query.weights)}

    def idf_table(self) -> dict[str, float]:
        """``{token: weight}`` for every non-special token: OpenSearch's ``idf.json``, as
        :meth:`IdfTable.to_dict <idfsplade.idf.IdfTable.to_dict>` writes it (6 decimals)."""
        specials = set(special_ids(self._tokenizer))
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        return {token: round(float(self.weights[i]), 6) for token, i in sorted(vocab.items(), key=lambda x: x[1])
                if i < self.vocab_size and i not in specials}
