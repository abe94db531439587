"""Encode documents into SPLADE sparse vectors: ``w[j] = log(1 + relu(max_i logit[i, j]))``.

Why not ``SparseEncoder.encode_document``: we need three things it does not do.

1. *Max-pool first, chunk by chunk* (:func:`~idfsplade.model.pooling.splade_max_pool_chunked`): the
   masked LM runs up to its head's transform, then the vocabulary projection runs over chunks of
   non-pad positions into one reused buffer, max-pooled as it goes. No ``batch × length × vocab``
   logits tensor is ever allocated (2 GB for 32 × 512 tokens, and the page faults of a fresh one
   every batch). Same output as ``SpladePooling``; ``pooling="full"`` keeps the previous path.
2. *Special tokens are zeroed* ([CLS], [SEP], ...), as OpenSearch's encoders do; they never match an
   inference-free query (tokenized without them) and only cost index space.
3. *Resumable sharded output* to the CSR store, with pruning, sorted-by-length batches and bf16 on GPU.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sentence_transformers import SparseEncoder

from idfsplade.errors import notice
from idfsplade.model.composite import SparseSum, TiedSpladePart, composite_of, native_bf16
from idfsplade.model.inference_free import document_modules
from idfsplade.model.pooling import default_chunk_size, splade_max_pool, splade_max_pool_chunked
from idfsplade.vectors import PruneConfig, SparseMatrixStore, load_csr, prune_rows


POOLING_MODES = ("chunked", "full")
PRECISIONS = ("fp32", "bf16", "int8")


class DocumentEncoder:
    """Batched document encoding with the document route of a ``SparseEncoder``.

    - ``pooling="chunked"`` (default): project onto the vocabulary chunk by chunk, see the module doc.
      Architectures whose head cannot be split this way (no ``nn.Linear`` output embeddings, or a
      head that does more after it) fall back to ``"full"`` with a warning; so does sum pooling.
    - ``pooling="full"``: the previous path — the whole ``batch × length × vocab`` logits, then pool.
    - ``precision``: ``"fp32"``; ``"bf16"`` (autocast; the default on CUDA, as before); ``"int8"``
      (CPU, chunked only: dynamically quantised vocabulary projection). ``None`` = bf16 on CUDA,
      fp32 elsewhere. Measured costs and nDCG@10 are in docs/performance.md.
    - ``chunk_size``: positions projected at once (default: a 128 MiB buffer, 1,099 positions of
      BERT's vocabulary).

    The chunked path briefly makes the projection module return its input while the masked LM runs,
    so the same model object must not run a forward pass in another thread meanwhile.
    """

    def __new__(cls, model: SparseEncoder, *args, **kwargs):
        # A composite model (idfsplade-mini: a SparseSum document route) gets the encoder that adds its parts.
        if cls is DocumentEncoder and composite_of(model) is not None:
            return super().__new__(CompositeDocumentEncoder)
        return super().__new__(cls)

    def __init__(self, model: SparseEncoder, batch_size: int = 32, max_length: int | None = None,
                 prune: PruneConfig | None = None, pooling: str = "chunked", precision: str | None = None,
                 chunk_size: int | None = None) -> None:
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS} or None, got {precision!r}")
        if precision == "int8" and pooling == "full":
            raise ValueError("precision='int8' quantises the chunked path's projection: use pooling='chunked'")
        self.model = model
        self.mlm, self.pooling = document_modules(model)
        self.tokenizer = self.mlm.tokenizer
        self.batch_size = batch_size
        self.max_length = max_length or self.mlm.max_seq_length or 512
        self.prune = prune or PruneConfig()
        self.vocab_size = len(self.tokenizer)
        self.special_ids = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)
        self.pooling_mode = pooling
        self.chunk_size = chunk_size
        self._precision = precision
        self._checked = False  # the chunked path is compared with the full one once, on first use
        self._buffer: torch.Tensor | None = None
        self._weight_cache: dict = {}

    @property
    def device(self) -> torch.device:
        return next(self.mlm.auto_model.parameters()).device

    @property
    def precision(self) -> str:
        if self._precision is not None:
            return self._precision
        return "bf16" if self.device.type == "cuda" else "fp32"

    def _autocast(self, precision: str | None = None):
        if (precision or self.precision) == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        self.mlm.auto_model.eval()
        if self.pooling_mode == "chunked" and not self._checked:
            self._check_chunked()
        if self.pooling_mode == "chunked":
            weights = self._pool_chunked(batch, self.precision)
        else:
            weights = self._pool_full(batch, self.precision)
        if self.pooling.activation_function == "log1p_relu":  # OpenSearch v3 models: a second log1p
            weights = torch.log1p(weights)
        return weights

    def _pool_full(self, batch, precision: str) -> torch.Tensor:
        """The whole ``batch × length × vocab`` logits, then pooling (the previous path)."""
        with self._autocast(precision):
            logits = self.mlm.auto_model(**batch).logits
        logits = logits.float()
        special_ids = self.special_ids.to(logits.device)
        if self.pooling.pooling_strategy == "max":
            return splade_max_pool(logits, batch["attention_mask"], special_ids, inplace=True)
        # sum pooling cannot be reordered: transform every position, then sum
        mask = batch["attention_mask"].unsqueeze(-1)
        return (torch.log1p(torch.relu(logits)) * mask).sum(dim=1).index_fill(1, special_ids, 0.0)

    def _pool_chunked(self, batch, precision: str) -> torch.Tensor:
        decoder = _vocab_projection(self.mlm.auto_model)
        with self._autocast(precision), _without_projection(decoder):
            states = self.mlm.auto_model(**batch).logits  # the projection's inputs: batch × length × hidden
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        states = states.to(dtype)
        weight = self._weight(decoder, dtype)
        project = self._int8_projection(decoder) if precision == "int8" else None
        special_ids = self.special_ids.to(states.device)
        chunk_size = self.chunk_size or default_chunk_size(weight.shape[0], dtype)
        if self._buffer is None or self._buffer.dtype != dtype or self._buffer.device != states.device:
            self._buffer = torch.empty(chunk_size, weight.shape[0], dtype=dtype, device=states.device)
        return splade_max_pool_chunked(states, batch["attention_mask"], weight, decoder.bias, special_ids,
                                       chunk_size=chunk_size, buffer=self._buffer, project=project)

    def _weight(self, decoder: torch.nn.Linear, dtype: torch.dtype) -> torch.Tensor:
        weight = decoder.weight.detach()
        if weight.dtype == dtype:
            return weight
        key = (dtype, weight.data_ptr(), weight._version)
        if key not in self._weight_cache:
            self._weight_cache = {key: weight.to(dtype)}
        return self._weight_cache[key]

    def _int8_projection(self, decoder: torch.nn.Linear):
        if self.device.type != "cpu":
            raise ValueError("precision='int8' runs on the CPU only")
        key = ("int8", decoder.weight.data_ptr(), decoder.weight._version)
        if key not in self._weight_cache:
            with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
                warnings.simplefilter("ignore")
                linear = torch.nn.Linear(decoder.in_features, decoder.out_features, bias=False)
                linear.weight = torch.nn.Parameter(decoder.weight.detach().float().clone(), requires_grad=False)
                quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear},
                                                                   dtype=torch.qint8)[0]
            self._weight_cache = {key: lambda rows, out: quantized(rows)}
        return self._weight_cache[key]

    def _check_chunked(self) -> None:
        """Fall back to ``pooling="full"`` where the chunked path cannot reproduce it (checked in fp32 on a
        padded two-text batch): sum pooling, output embeddings that are not an ``nn.Linear``, or a head
        that transforms the logits after its projection."""
        self._checked = True
        reason = None
        if self.pooling.pooling_strategy != "max":
            reason = f"{self.pooling.pooling_strategy} pooling"
        elif _vocab_projection(self.mlm.auto_model) is None:
            reason = "its output embeddings are not an nn.Linear"
        else:
            probe = self.tokenizer(_PROBE_TEXTS, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
            try:
                diff = (self._pool_chunked(probe, "fp32") - self._pool_full(probe, "fp32")).abs().max().item()
            except Exception as exc:  # noqa: BLE001 - any failure means: this head cannot be split
                diff, reason = None, f"{type(exc).__name__}: {exc}"
            if diff is not None and not diff <= 1e-4:
                reason = f"its chunked vectors differ from the full ones by {diff:.2e}"
        if reason is not None:
            warnings.warn(f"chunked pooling unavailable for this model ({reason}); using pooling='full'",
                          stacklevel=3)
            self.pooling_mode = "full"

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
        with store.reporting_refused_writes():
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


class CompositeDocumentEncoder(DocumentEncoder):
    """:class:`DocumentEncoder` of a composite model: each part encodes the batch with its own truncation, and
    the weighted part vectors are added before pruning (``w = Σ_p α_p · w_p``). A masked-LM part runs the
    chunked path above; a tied-head part (:class:`~idfsplade.model.composite.TiedSpladePart`) runs in bf16
    where the device has native bf16 (CUDA, or a CPU with AVX-512 BF16/AMX), else fp32, unless
    ``precision`` says otherwise (measured: benchmarks/encode_speed.py, docs/performance.md)."""

    def __init__(self, model: SparseEncoder, batch_size: int = 32, max_length: int | None = None,
                 prune: PruneConfig | None = None, pooling: str = "chunked", precision: str | None = None,
                 chunk_size: int | None = None) -> None:
        self.model = model
        self.sum: SparseSum = composite_of(model)
        self.batch_size = batch_size
        self.prune = prune or PruneConfig()
        self.tokenizer = self.sum.tokenizer
        self.vocab_size = len(self.tokenizer)
        self.max_length = max_length or self.sum.max_seq_length
        self.special_ids = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)
        self._precision = precision
        self._native_bf16 = native_bf16(self.device)  # read once, not per batch
        self.parts: list = []
        for spec, module in zip(self.sum.parts, self.sum.part_modules):
            if isinstance(module, TiedSpladePart):
                self.parts.append(module)
            else:
                sub = SparseEncoder(modules=[module.transformer, module.pooling], device=str(self.device))
                self.parts.append(DocumentEncoder(sub, batch_size=batch_size, max_length=spec.get("max_seq_length"),
                                                  pooling=pooling, precision=precision, chunk_size=chunk_size))
        self._announced = False

    @property
    def device(self) -> torch.device:
        return next(self.sum.parameters()).device

    @property
    def precision(self) -> str:
        """The tied parts' precision (masked-LM parts keep :class:`DocumentEncoder`'s own default)."""
        if self._precision is not None:
            return self._precision
        return "bf16" if self._native_bf16 else "fp32"

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        if not self._announced and any(isinstance(p, TiedSpladePart) for p in self.parts):
            self._announced = True
            notice(f"composite model: its tied-head part encodes in {self.precision}"
                   + (" (native bf16 here)" if self._precision is None and self.precision == "bf16" else ""))
        total = None
        for i, (part, weight) in enumerate(zip(self.parts, self.sum.weights)):
            if isinstance(part, TiedSpladePart):
                part.transformer.auto_model.eval()
                batch = self.sum.tokenize_part(i, texts, self.device)
                vector = part.encode_batch(batch, self.special_ids.to(self.device), self.precision)
            else:
                vector = part._encode_batch(texts)
            vector = vector.float() * weight
            total = vector if total is None else total.add_(vector)
        return total


# A padded batch: the probe must exercise the pad handling.
_PROBE_TEXTS = ["a short text", "a longer text, so that the first one of the two is padded to its length"]


def _vocab_projection(auto_model: torch.nn.Module) -> torch.nn.Linear | None:
    """The MLM's vocabulary projection (``get_output_embeddings()``) if it is an ``nn.Linear``."""
    get = getattr(auto_model, "get_output_embeddings", None)
    decoder = get() if get is not None else None
    return decoder if isinstance(decoder, torch.nn.Linear) else None


@contextlib.contextmanager
def _without_projection(decoder: torch.nn.Linear) -> Iterator[None]:
    """Within this block the vocabulary projection returns its input, so the masked LM's "logits" are
    its head's transformed hidden states (``batch × length × hidden``; BERT: ``cls.predictions.transform``)."""
    decoder.forward = _identity  # an instance attribute shadows Linear.forward
    try:
        yield
    finally:
        del decoder.forward


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
