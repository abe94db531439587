"""Which extra to install when an optional dependency is missing: one line instead of a traceback.

The core install (``pip install idfsplade``, or ``idfsplade[serve]`` for the service) is torch-free:
``search`` and ``serve`` need no model. Encoding, training and copying a model's query side into an
index need ``idfsplade[model]`` (torch, transformers, sentence-transformers).
"""

from __future__ import annotations

# top-level module -> the extra that installs it
_EXTRAS = {"torch": "model", "transformers": "model", "sentence_transformers": "model", "accelerate": "train",
           "datasets": "train", "fastapi": "serve", "uvicorn": "serve", "httpx": "serve", "seismic": "seismic",
           "pymilvus": "milvus", "milvus_lite": "milvus", "pyserini": "lucene", "opensearchpy": "opensearch"}


def missing_extra_message(exc: BaseException) -> str | None:
    """For a ``ModuleNotFoundError`` of an optional dependency, the one-line error naming its extra."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    extra = _EXTRAS.get(exc.name.split(".")[0])
    if extra is None:
        return None
    what = "torch, transformers and sentence-transformers" if extra == "model" else exc.name.split(".")[0]
    return f"this needs {what}, which this install lacks: pip install 'idfsplade[{extra}]'"
