"""SPLADE max pooling as one traceable function, shared by the document encoder and the OpenSearch
TorchScript export so the two cannot drift apart.

``log1p`` and ``relu`` are monotone, so ``max_i log1p(relu(x_i)) = log1p(relu(max_i x_i))``: pooling
the raw logits first (pads at -inf) skips two passes over the ``batch × length × vocab`` tensor that
sentence-transformers' ``SpladePooling`` makes. Same output, ~1.6x faster on CPU (measured).
"""

from __future__ import annotations

import torch


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
