"""SPLADE max pooling as one traceable function, shared by the document encoder and the OpenSearch
TorchScript export so the two cannot drift apart.

``log1p`` and ``relu`` are monotone, so ``max_i log1p(relu(x_i)) = log1p(relu(max_i x_i))``: pooling
the raw logits first (pads at -inf) skips two passes over the ``batch × length × vocab`` tensor that
sentence-transformers' ``SpladePooling`` makes. Same output, ~1.6x faster on CPU (measured).
"""

from __future__ import annotations

import torch


def splade_max_pool(logits: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor) -> torch.Tensor:
    """``w[b, j] = log(1 + relu(max_{i: mask[b,i]=1} logits[b, i, j]))``, with ``w[:, special_ids] = 0``."""
    pooled = logits.masked_fill(attention_mask.unsqueeze(-1) == 0, float("-inf")).amax(dim=1)
    return torch.log1p(torch.relu(pooled)).index_fill(1, special_ids, 0.0)
