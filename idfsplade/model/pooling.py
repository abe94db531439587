"""SPLADE max pooling, in two forms that give the same vectors.

- :func:`splade_max_pool` pools a ready ``batch × length × vocab`` logits tensor. It is one traceable
  function, shared by the legacy document path and the OpenSearch TorchScript export so the two
  cannot drift apart.
- :func:`splade_max_pool_chunked` never builds that tensor: it projects the MLM head's hidden states
  onto the vocabulary a chunk of positions at a time, into one reused ``chunk × vocab`` buffer, and
  max-pools each chunk into the ``batch × vocab`` result. Pads are never projected at all.

``log1p`` and ``relu`` are monotone, so ``max_i log1p(relu(x_i)) = log1p(relu(max_i x_i))``: both pool
the raw logits first and apply the activation once per document. The bias of the vocabulary
projection is a per-column constant, so it is added after the max (``max_i (x_i + b) = max_i x_i + b``,
also after float rounding, which is monotone).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

#: Bytes of the reused ``chunk × vocab`` buffer of :func:`splade_max_pool_chunked` when no chunk size is
#: given: 128 MiB, i.e. 1,099 positions of a 30,522-token vocabulary in float32. Large chunks matter
#: with 2 threads on a shared machine (every torch op is a parallel region whose threads wait for each
#: other: 128-row chunks were 1.6x slower than 1,024-row ones there); on 1 thread 128-2,048 rows are
#: within 10% of each other (benchmarks/encode_speed.py, docs/performance.md).
DEFAULT_CHUNK_BYTES = 128 * 2**20


def default_chunk_size(vocab_size: int, dtype: torch.dtype = torch.float32) -> int:
    """Positions per chunk so that the ``chunk × vocab`` buffer takes :data:`DEFAULT_CHUNK_BYTES`."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return max(16, DEFAULT_CHUNK_BYTES // (vocab_size * itemsize))


def splade_max_pool(logits: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor,
                    inplace: bool = False) -> torch.Tensor:
    """``w[b, j] = log(1 + relu(max_{i: mask[b,i]=1} logits[b, i, j]))``, with ``w[:, special_ids] = 0``.

    ``inplace=True`` masks the pads in ``logits`` itself (which the caller must not need afterwards):
    on CPU a fresh ``batch × length × vocab`` copy (1 GB for 16 × 512 tokens) costs more than the
    max itself — page faults on a new allocation — so inference skips it (2.5x faster pooling, measured).
    """
    pad = attention_mask.unsqueeze(-1) == 0
    masked = logits.masked_fill_(pad, float("-inf")) if inplace else logits.masked_fill(pad, float("-inf"))
    pooled = masked.amax(dim=1)
    return torch.log1p(torch.relu(pooled)).index_fill(1, special_ids, 0.0)


def splade_max_pool_chunked(states: torch.Tensor, attention_mask: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None, special_ids: torch.Tensor, chunk_size: int | None = None,
                            buffer: torch.Tensor | None = None,
                            project: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                            ) -> torch.Tensor:
    """:func:`splade_max_pool` of ``logits = states @ weight.T + bias``, without building ``logits``.

    ``states`` (``batch × length × hidden``) are the inputs of the vocabulary projection (the MLM
    head's transformed hidden states); ``weight`` is ``vocab × hidden``. Non-pad positions are packed
    row after row, projected ``chunk_size`` rows at a time (default: :func:`default_chunk_size`) into
    ``buffer`` (reused; allocated when ``None`` or unfit), and each chunk is max-pooled into its
    documents' rows with one ``index_reduce_``. The matmul runs in ``states.dtype``; the result is
    float32.

    ``project(rows, out)`` replaces the matmul (it returns ``rows @ weight.T``, in ``out`` or not):
    the int8 option passes a dynamically quantised projection here.
    """
    mask = attention_mask.bool()
    packed = states[mask]  # (positions, hidden): document 0's positions, then document 1's, ...
    lengths = mask.sum(dim=1)
    doc_of_row = torch.repeat_interleave(torch.arange(len(lengths), device=states.device), lengths)
    vocab = weight.shape[0]
    chunk_size = chunk_size or default_chunk_size(vocab, states.dtype)
    pooled = torch.full((len(lengths), vocab), float("-inf"), dtype=states.dtype, device=states.device)
    n_rows = packed.shape[0]
    rows = min(chunk_size, max(n_rows, 1))
    if buffer is None or buffer.shape[0] < rows or buffer.shape[1] != vocab or buffer.dtype != states.dtype \
            or buffer.device != states.device:
        buffer = torch.empty(rows, vocab, dtype=states.dtype, device=states.device)
    weight_t = weight.t()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)  # "in beta"
        for c0 in range(0, n_rows, chunk_size):
            c1 = min(n_rows, c0 + chunk_size)
            out = buffer[:c1 - c0]
            logits = project(packed[c0:c1], out) if project is not None else torch.mm(packed[c0:c1], weight_t, out=out)
            pooled.index_reduce_(0, doc_of_row[c0:c1], logits, "amax")  # a document without rows stays -inf
    pooled = pooled.float()
    if bias is not None:
        pooled += bias.float()
    return torch.log1p(torch.relu_(pooled)).index_fill_(1, special_ids, 0.0)
