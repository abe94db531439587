"""The inference-free sparse encoder, as a sentence-transformers ``SparseEncoder``.

Its single module is a ``Router``: the *query* route is ``SparseStaticEmbedding`` holding the IDF
weights (no neural network at query time), the *document* route is a masked LM followed by
``SpladePooling`` (max over positions of ``log(1 + relu(logits))``). This is the layout of
OpenSearch's published ``opensearch-neural-sparse-encoding-doc-*`` checkpoints in sentence-transformers,
so those load unchanged with :func:`load_sparse_encoder`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SparseEncoder
from sentence_transformers.sparse_encoder.models import Router, SparseStaticEmbedding, SpladePooling, Transformer

from idfsplade.errors import InputError, warn_once
from idfsplade.idf import MISSING_TOKEN_IDF, IdfTable
from idfsplade.model.registry import resolve_model
from idfsplade.query.encoder import QueryEncoder


def build_inference_free_encoder(mlm_name_or_path: str, idf: IdfTable | str | Path | None,
                                 activation_function: str = "relu", max_seq_length: int = 512,
                                 device: str | None = None) -> SparseEncoder:
    """Assemble Router(query=SparseStaticEmbedding(idf), document=[MLM, SpladePooling(max)]).

    ``idf`` is an :class:`IdfTable`, a path to an ``idf.json``, or ``None`` to look for ``idf.json``
    next to the masked LM (local folder or hub repository).
    """
    path = resolve_model(mlm_name_or_path)
    mlm = Transformer(path, transformer_task="fill-mask", max_seq_length=max_seq_length)
    if not isinstance(idf, IdfTable):
        idf = IdfTable.load(_find_idf_json(path) if idf is None else idf, mlm.tokenizer)
    query = SparseStaticEmbedding(tokenizer=mlm.tokenizer, weight=torch.from_numpy(idf.weights.copy()),
                                  frozen=True)
    pooling = SpladePooling(pooling_strategy="max", activation_function=activation_function,
                            embedding_dimension=len(mlm.tokenizer))
    router = Router.for_query_document(query_modules=[query], document_modules=[mlm, pooling])
    return SparseEncoder(modules=[router], similarity_fn_name="dot", device=device)


def _find_idf_json(path: str) -> str:
    local = Path(path) / "idf.json"
    if local.exists():
        return str(local)
    if Path(path).exists():
        raise InputError("no idf.json beside this masked LM: compute one with `idfsplade idf` and pass --idf",
                         path=path)
    from huggingface_hub import hf_hub_download  # hub ids only: users with internet

    try:
        return hf_hub_download(path, "idf.json")
    except Exception as exc:  # noqa: BLE001 - any hub failure means the same thing to the user
        raise InputError(f"could not fetch idf.json for '{path}' ({type(exc).__name__}); pass --idf",
                         path=path) from None


def _own_idf_json(path: str) -> str | None:
    """The ``idf.json`` shipped with a saved checkpoint (folder or hub repository), or None."""
    try:
        return _find_idf_json(path)
    except InputError:
        return None


def load_tokenizer(name_or_path: str):
    """The document tokenizer of a model: a bare masked LM's own, or for a saved ``SparseEncoder``
    (whose files sit in Router sub-folders) the one in its document route's first module."""
    from transformers import AutoTokenizer

    path = resolve_model(name_or_path)
    folder = Path(path)
    if folder.is_dir() and (folder / "modules.json").exists() and not (folder / "tokenizer_config.json").exists():
        router = folder / "router_config.json"
        subfolders = []
        if router.exists():
            structure = json.loads(router.read_text(encoding="utf-8")).get("structure", {})
            subfolders = list(structure.get("document", [])) + list(structure.get("query", []))
        for sub in subfolders + sorted(p.name for p in folder.iterdir() if p.is_dir()):
            if (folder / sub / "tokenizer_config.json").exists():
                return AutoTokenizer.from_pretrained(str(folder / sub))
        raise InputError("no tokenizer in this sentence-transformers folder", path=path)
    if folder.is_dir() and (folder / "sparse_tokenize.zip").exists():
        raise InputError("an `idfsplade export opensearch` folder holds no document model; give the model it "
                         "was exported from", path=path)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:  # ValueError: a folder without tokenizer files
        raise InputError(f"cannot load a tokenizer ({str(exc).splitlines()[0]})", path=path) from None


def _is_inference_free(model: SparseEncoder) -> bool:
    first = model[0]
    return isinstance(first, Router) and "query" in first.sub_modules and "document" in first.sub_modules \
        and isinstance(first.sub_modules["query"][0], SparseStaticEmbedding)


def _saved_as_sentence_transformer(path: str) -> bool:
    if Path(path).exists():
        return (Path(path) / "modules.json").exists()
    try:
        from huggingface_hub import hf_hub_download

        hf_hub_download(path, "modules.json")
        return True
    except Exception:  # noqa: BLE001 - absent file or no network: fall back to building
        return False


def _only_known_classes(path: str) -> bool:
    """Whether a local saved model names module classes of sentence-transformers and idfsplade only, at
    least one of idfsplade (``modules.json`` and ``router_config.json``)."""
    folder = Path(path)
    types: list[str] = []
    try:
        types += [m.get("type", "") for m in json.loads((folder / "modules.json").read_text(encoding="utf-8"))]
        router = folder / "router_config.json"
        if router.exists():
            types += list(json.loads(router.read_text(encoding="utf-8")).get("types", {}).values())
    except (OSError, ValueError, AttributeError):
        return False
    known = all(t.startswith(("sentence_transformers.", "idfsplade.")) for t in types)
    return known and any(t.startswith("idfsplade.") for t in types)


def load_sparse_encoder(name_or_path: str, idf: IdfTable | str | Path | None = None,
                        device: str | None = None) -> SparseEncoder:
    """Load an inference-free encoder.

    - A saved ``SparseEncoder`` with a query/document Router (ours, or an OpenSearch checkpoint)
      loads unchanged; ``idf`` replaces its query weights when given.
    - A bare masked LM (e.g. the packaged ``splade-tiny``, or any BERT-vocabulary MLM) is wrapped by
      :func:`build_inference_free_encoder` with ``idf`` (or the ``idf.json`` next to it).
    """
    path = resolve_model(name_or_path)
    if _saved_as_sentence_transformer(path):
        # Our own module classes (the composite's SparseSum) are trusted; any other outside class keeps
        # sentence-transformers' trust_remote_code gate.
        model = SparseEncoder(path, device=device, trust_remote_code=_only_known_classes(path))
        if not _is_inference_free(model):
            raise InputError("this SparseEncoder has no query/document Router with a SparseStaticEmbedding "
                             "query route; it is not an inference-free model", path=path)
        query_module: SparseStaticEmbedding = model[0].sub_modules["query"][0]
        if idf is None:
            # One missing-token rule whatever --idf says: the checkpoint's idf.json read by IdfTable
            # (absent token → 1.0, as OpenSearch), not the module's weights, where sentence-transformers'
            # SparseStaticEmbedding.from_json gave an absent token 0.
            idf = _own_idf_json(path)
            if idf is None:
                warn_once(f"{path} has no idf.json: its query weights are used as saved (a token they "
                          f"leave at 0 is dropped from queries instead of weighing {MISSING_TOKEN_IDF})")
        if idf is not None:
            table = idf if isinstance(idf, IdfTable) else IdfTable.load(idf, query_module.tokenizer)
            with torch.no_grad():
                query_module.weight.copy_(torch.from_numpy(table.weights))
        return model
    if not Path(path).exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise InputError("model folder not found", path=path)
    if Path(path).is_dir() and not (Path(path) / "config.json").exists():
        hint = (" (an `idfsplade export opensearch` folder holds only the exported model; give the model it was "
                "exported from)" if (Path(path) / "sparse_tokenize.zip").exists() else "")
        raise InputError(f"not a model folder: no config.json or modules.json{hint}", path=path)
    return build_inference_free_encoder(path, idf, device=device)


def query_weights(model: SparseEncoder) -> tuple[np.ndarray, object]:
    """The query route's per-token weights and tokenizer."""
    if not _is_inference_free(model):
        raise InputError("not an inference-free model (no SparseStaticEmbedding query route)")
    module: SparseStaticEmbedding = model[0].sub_modules["query"][0]
    return module.weight.detach().float().cpu().numpy(), module.tokenizer


def model_query_encoder(model: SparseEncoder, prune_ratio: float | None = None) -> QueryEncoder:
    """The torch-free :class:`~idfsplade.query.QueryEncoder` of a ``SparseEncoder``'s query route: its
    tokenizer, weights and max length (what ``QueryEncoder.from_model`` did; the query side imports no
    model code)."""
    weights, tokenizer = query_weights(model)
    return QueryEncoder(tokenizer, weights, max_length=model[0].sub_modules["query"][0].max_seq_length,
                        prune_ratio=prune_ratio)


#: Why ``train`` / ``adapt`` refuse a composite (they fine-tune one masked LM through the query-column head).
NOT_TRAINABLE = ("this is a composite model (a masked LM plus a tied-head encoder, e.g. idfsplade-mini): it encodes, "
                 "indexes, searches and exports like any model, but train and adapt take a single masked LM (train "
                 "the composite's parts with configs/idfsplade-mini/build.py)")


def document_modules(model: SparseEncoder) -> tuple[Transformer, SpladePooling]:
    """The document route's masked LM and pooling."""
    route = model[0].sub_modules["document"] if isinstance(model[0], Router) else list(model)
    if len(route) == 1 and type(route[0]).__name__ == "SparseSum":  # by name: composite.py imports this module
        raise InputError(NOT_TRAINABLE)
    if len(route) < 2:
        raise InputError(f"document route has {len(route)} module(s), expected a masked LM and SpladePooling")
    mlm, pooling = route[0], route[1]
    if not isinstance(pooling, SpladePooling):
        raise InputError(f"document route ends in {type(pooling).__name__}, expected SpladePooling")
    return mlm, pooling


def save_idf_json(model: SparseEncoder, path: str | Path) -> None:
    """Write the model's query weights as OpenSearch's ``idf.json``."""
    weights, tokenizer = query_weights(model)
    IdfTable(weights, tokenizer).save(path)

