"""The query side of an inference-free model lives in :mod:`idfsplade.query` (torch-free); re-exported
here for existing imports. ``QueryEncoder.from_model`` builds it from a ``SparseEncoder``."""

from idfsplade.query.encoder import QueryEncoder, SparseQuery

__all__ = ["QueryEncoder", "SparseQuery"]
