"""From an index folder to a ready app: which model and idf to query it with, loaded once.

The index records its provenance in ``index.info`` (``model`` and ``idf_file``), so by default the
service queries it with the same model and idf it was built with; ``--model`` and ``--idf`` override. Uvicorn's extra worker processes cannot be handed an app object, so the same
settings also travel through one environment variable to :func:`app_from_env`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastapi import FastAPI

from idfsplade.errors import InputError
from idfsplade.index import InvertedIndex
from idfsplade.model import QueryEncoder, load_sparse_encoder
from idfsplade.search import InferenceFreeRetriever
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

    def to_env(self) -> str:
        return json.dumps({**asdict(self), "index_dir": str(self.index_dir)})

    @classmethod
    def from_env(cls, value: str) -> ServeConfig:
        raw = json.loads(value)
        return cls(Path(raw["index_dir"]), raw["model"], raw["idf"], ServeLimits(**raw["limits"]))


def resolve_source(index_dir: Path, info: dict, model: str | None, idf: str | None) -> tuple[str, str | None]:
    """``(model, idf.json path)`` to query the index with; ``None`` means the model's own weights.

    Defaults come from the provenance the pipeline records (``model``, and ``idf_file``: the idf.json
    the documents were encoded with, absent or null for the model's own), so queries are weighted
    exactly as at build time. Without a recorded model there is nothing safe to guess: an error.
    """
    model = model or info.get("model")
    if not model:
        raise InputError("the index records no model (index.info); pass --model", path=index_dir)
    idf = idf or info.get("idf_file") or "model"
    if idf == "model":
        return model, None
    if not Path(idf).exists():
        raise InputError("idf file not found; pass --idf", path=idf)
    return model, idf


def load_app(config: ServeConfig) -> FastAPI:
    """Load the index (memory-mapped) and the query side of the model, then build the app."""
    index = InvertedIndex.load(config.index_dir)
    model, idf_path = resolve_source(Path(config.index_dir), index.info, config.model, config.idf)
    # CPU: the query side is a tokenizer and a weight array; the document MLM is loaded only to read them.
    query_encoder = QueryEncoder.from_model(load_sparse_encoder(model, idf=idf_path, device="cpu"))
    if query_encoder.vocab_size != index.vocab_size:
        raise InputError(f"the index has a {index.vocab_size}-term vocabulary but model '{model}' has "
                         f"{query_encoder.vocab_size}; pass the --model it was built with", path=config.index_dir)
    return create_app(InferenceFreeRetriever(query_encoder, index), model=model, idf=idf_path or "model",
                      limits=config.limits)


def app_from_env() -> FastAPI:
    """Uvicorn factory (``--factory``) for worker processes: the config comes from ``IDFSPLADE_SERVE_CONFIG``."""
    value = os.environ.get(ENV_VAR)
    if value is None:
        raise InputError(f"{ENV_VAR} is not set; start the service with `idfsplade serve`")
    return load_app(ServeConfig.from_env(value))
