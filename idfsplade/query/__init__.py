"""The query side of an inference-free model, with no model and no torch: a ``tokenizers`` tokenizer
and an idf array turn text into a sparse query (:class:`QueryEncoder`), loaded from ``tokenizer.json``
+ ``idf.json`` (:mod:`idfsplade.query.artefact`)."""

from idfsplade.query.encoder import QueryEncoder, SparseQuery

__all__ = ["QueryEncoder", "SparseQuery"]
