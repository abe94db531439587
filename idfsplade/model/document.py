"""Encode documents into SPLADE sparse vectors: ``w[j] = log(1 + relu(max_i logit[i, j]))``.

Why not ``SparseEncoder.encode_document``: we need three things it does not do.

1. *Max-pool first* (:func:`~idfsplade.model.pooling.splade_max_pool`): same output as
   ``SpladePooling``, ~1.6x faster on CPU.
2. *Special tokens are zeroed* ([CLS], [SEP], ...), as OpenSearch's encoders do; they never match an
   inference-free query (tokenized without them) and only cost index space.
3. *Resumable sharded output* to the CSR store, with pruning, sorted-by-length batches and bf16 on GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sentence_transformers import SparseEncoder

from idfsplade.model.inference_free import document_modules
from idfsplade.model.pooling import splade_max_pool
from idfsplade.vectors import PruneConfig, SparseMatrixStore, load_csr, prune_rows


class DocumentEncoder:
    """Batched document encoding with the document route of a ``SparseEncoder``."""

    def __init__(self, model: SparseEncoder, batch_size: int = 32, max_length: int | None = None,
                 prune: PruneConfig | None = None) -> None:
        self.model = model
        self.mlm, self.pooling = document_modules(model)
        self.tokenizer = self.mlm.tokenizer
        self.batch_size = batch_size
        self.max_length = max_length or self.mlm.max_seq_length or 512
        self.prune = prune or PruneConfig()
        self.vocab_size = len(self.tokenizer)
        self.special_ids = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)

    @property
    def device(self) -> torch.device:
        return next(self.mlm.auto_model.parameters()).device

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        self.mlm.auto_model.eval()
        with self._autocast():
            logits = self.mlm.auto_model(**batch).logits
        logits = logits.float()
        special_ids = self.special_ids.to(logits.device)
        if self.pooling.pooling_strategy == "max":
            weights = splade_max_pool(logits, batch["attention_mask"], special_ids, inplace=True)
        else:  # sum pooling cannot be reordered: transform every position, then sum
            mask = batch["attention_mask"].unsqueeze(-1)
            weights = (torch.log1p(torch.relu(logits)) * mask).sum(dim=1).index_fill(1, special_ids, 0.0)
        if self.pooling.activation_function == "log1p_relu":  # OpenSearch v3 models: a second log1p
            weights = torch.log1p(weights)
        return weights

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> sp.csr_matrix:
        """Encode ``texts`` into a CSR matrix (one row per text, in input order)."""
        if not texts:
            return sp.csr_matrix((0, self.vocab_size), dtype=np.float32)
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True, truncation=True,
                                                      max_length=self.max_length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")[::-1]  # longest first: an OOM shows at once
        blocks = []
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            dense = self._encode_batch([texts[i] for i in idx]).cpu().numpy()
            blocks.append(prune_rows(sp.csr_matrix(dense, dtype=np.float32), self.prune))
            if progress is not None:
                progress(len(idx))
        sorted_rows = sp.vstack(blocks, format="csr")
        return sp.csr_matrix(sorted_rows[np.argsort(order)], dtype=np.float32)

    def encode_to_store(self, docs: Iterable[tuple[str, str]], path: str | Path, shard_size: int = 1024,
                        progress: Callable[[int], None] | None = None, extra: dict | None = None
                        ) -> tuple[sp.csr_matrix, list[str]]:
        """Encode ``(doc_id, text)`` pairs into the CSR store at ``path``, one shard at a time.

        Finished shards survive a kill; the same call resumes after the last finished shard.
        """
        store = SparseMatrixStore(path, self.vocab_size)
        n_shards = 0
        for index, chunk in enumerate(_chunks(docs, shard_size)):
            n_shards += 1
            if store.has_shard(index):
                if progress is not None:
                    progress(len(chunk))
                continue
            ids = [doc_id for doc_id, _ in chunk]
            matrix = self.encode([text for _, text in chunk], progress=progress)
            store.write_shard(index, matrix, ids)
        store.finish(n_shards, extra=extra)
        matrix, row_ids, _ = load_csr(path)
        return matrix, row_ids


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
