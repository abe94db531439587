"""From an index folder to a ready app: which model and idf to query it with, loaded once.

An index folder holds a copy of the query side it was built for (``tokenizer.json`` + ``idf.json``),
so by default the service queries it with exactly that, without loading a model or importing torch;
``--model`` and ``--idf`` override (see :func:`idfsplade.search.index_folder.open_query_side`).
Uvicorn's extra worker processes cannot be handed an app object, so the same settings also travel
through one environment variable to :func:`app_from_env`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastapi import FastAPI

from idfsplade.errors import InputError
from idfsplade.search.hybrid import check_hybrid_options
from idfsplade.search.index_folder import open_documents, open_hybrid, open_index_retriever
from idfsplade.serve.app import create_app
from idfsplade.serve.limits import ServeLimits

ENV_VAR = "IDFSPLADE_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """What to serve: an index folder, optional model / idf overrides, and the request limits."""

    index_dir: Path
    model: str | None = None
    idf: str | None = None  # an idf.json path or "model" (the model's own query weights)
    limits: ServeLimits = field(default_factory=ServeLimits)
    hybrid: bool = False  # fuse every search with the index's BM25 side-index
    hybrid_weight: float | None = None  # None: the tuned default (min_max) / unweighted (rrf)
    hybrid_method: str | None = None

    def to_env(self) -> str:
        return json.dumps({**asdict(self), "index_dir": str(self.index_dir)})

    @classmethod
    def from_env(cls, value: str) -> ServeConfig:
        raw = json.loads(value)
        return cls(Path(raw["index_dir"]), raw["model"], raw["idf"], ServeLimits(**raw["limits"]),
                   raw.get("hybrid", False), raw.get("hybrid_weight"), raw.get("hybrid_method"))


def load_app(config: ServeConfig) -> FastAPI:
    """Load the index (memory-mapped), its query side (tokenizer.json + idf.json: no torch), its
    document store and, for hybrid mode, its BM25 side-index, then build the app."""
    settings = check_hybrid_options(config.hybrid, config.hybrid_weight, config.hybrid_method)
    retriever, source = open_index_retriever(Path(config.index_dir), config.model, config.idf)
    getattr(retriever.index, "warm", lambda: None)()  # a damaged postings array fails here, not in a request
    hybrid = open_hybrid(config.index_dir, retriever, *settings) if settings is not None else None
    return create_app(retriever, source, limits=config.limits, documents=open_documents(config.index_dir),
                      hybrid=hybrid)


def app_from_env() -> FastAPI:
    """Uvicorn factory (``--factory``) for worker processes: the config comes from ``IDFSPLADE_SERVE_CONFIG``."""
    value = os.environ.get(ENV_VAR)
    if value is None:
        raise InputError(f"{ENV_VAR} is not set; start the service with `idfsplade serve`")
    return load_app(ServeConfig.from_env(value))
