"""A document encoder made of several sparse encoders whose vectors are added: ``w(d) = Σ_p α_p · w_p(d)``.

``idfsplade-mini`` is ``w_tiny(d) + α · w_minilm(d)``: the packaged SPLADE-tiny (a masked LM) plus
all-MiniLM-L6-v2 read through a vocabulary head tied to its own input word embeddings
(:class:`TiedSpladePart`). Both parts run offline at indexing time and land in one sparse vector over
the same BERT vocabulary, so the query side is unchanged: tokenizer + ``idf.json``, no model.

The whole model is one sentence-transformers ``SparseEncoder``: a ``Router`` whose query route is the
usual ``SparseStaticEmbedding`` and whose document route is one :class:`SparseSum` module holding the
parts. sentence-transformers has no module that adds the outputs of two routes (``Router`` picks one
route per input; checked in v6.3), hence this one.

References:
    - Geng, Ru, Yang: Towards Competitive Search Relevance for Inference-Free Learned Sparse Retrievers (2024).
    - Formal et al.: SPLADE v2 (2021): ``log(1 + relu(max_i logit_ij))`` max pooling.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from sentence_transformers.base.modules.input_module import InputModule
from sentence_transformers.sparse_encoder.modules import SpladePooling

from idfsplade.errors import InputError
from idfsplade.model.pooling import default_chunk_size, splade_max_pool, splade_max_pool_chunked

PART_KINDS = ("mlm", "tied")
_WEIGHTS_FILE = "parts.safetensors"


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether bfloat16 matrix products run natively here: CUDA, or a CPU with AVX-512 BF16 or AMX
    (read from ``/proc/cpuinfo``; an AVX2-only CPU emulates bf16 and gains nothing)."""
    if torch.device(device).type == "cuda":
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


class TiedSpladePart(torch.nn.Module):
    """SPLADE weights from an encoder without a masked-LM head: its last hidden states times its own input
    word embeddings (a decoder tied to them) plus a learned per-token bias, max-pooled over positions,
    ``w[j] = log(1 + relu(max_i h_i · E_j + b_j))``, special tokens 0, then the ``top_k`` largest kept.

    Args:
        transformer: a sentence-transformers ``Transformer`` (feature extraction) over a BERT-vocabulary encoder.
        bias: per-token bias, shape ``(vocab,)``; ``bias_start`` everywhere when ``None``.
        bias_start: the untrained bias (−2: measured, docs/results.md).
        top_k: tokens kept per document (``None``: all).
    """

    def __init__(self, transformer, bias: torch.Tensor | None = None, bias_start: float = -2.0,
                 top_k: int | None = 256) -> None:
        super().__init__()
        self.transformer = transformer
        vocab = self.embeddings.shape[0]
        self.bias = torch.nn.Parameter(bias.float().clone() if bias is not None else torch.full((vocab,), bias_start))
        self.top_k = top_k
        self._cache: dict = {}

    @property
    def embeddings(self) -> torch.Tensor:
        return self.transformer.auto_model.get_input_embeddings().weight

    @property
    def tokenizer(self):
        return self.transformer.tokenizer

    def hidden_states(self, batch: dict) -> torch.Tensor:
        return self.transformer.auto_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                           token_type_ids=batch.get("token_type_ids")).last_hidden_state

    def forward(self, batch: dict, special_ids: torch.Tensor) -> torch.Tensor:
        """Differentiable path: the whole ``batch × length × vocab`` logits, then pooling."""
        logits = self.hidden_states(batch) @ self.embeddings.t() + self.bias
        return keep_top_k(splade_max_pool(logits, batch["attention_mask"], special_ids), self.top_k)

    @torch.inference_mode()
    def encode_batch(self, batch: dict, special_ids: torch.Tensor, precision: str) -> torch.Tensor:
        """Inference path: :func:`splade_max_pool_chunked` over the hidden states (no logits tensor)."""
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        with torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            states = self.hidden_states(batch)
        key = (dtype, self.embeddings.data_ptr(), self.embeddings._version)
        if key not in self._cache:
            self._cache = {key: self.embeddings.detach().to(dtype)}
        weight = self._cache[key]
        pooled = splade_max_pool_chunked(states.to(dtype), batch["attention_mask"], weight, self.bias.detach(),
                                         special_ids, chunk_size=default_chunk_size(weight.shape[0], dtype))
        return keep_top_k(pooled, self.top_k)


def keep_top_k(weights: torch.Tensor, k: int | None) -> torch.Tensor:
    """Zero all but each row's ``k`` largest weights (ties at the k-th value are all kept)."""
    if not k or k >= weights.shape[1]:
        return weights
    kth = weights.topk(k, dim=1).values[:, -1:]
    return weights * (weights >= kth)


class MlmPart(torch.nn.Module):
    """A masked LM and its SPLADE pooling (the document route of an inference-free model)."""

    def __init__(self, transformer, pooling: SpladePooling) -> None:
        super().__init__()
        self.transformer, self.pooling = transformer, pooling

    @property
    def tokenizer(self):
        return self.transformer.tokenizer

    def forward(self, batch: dict, special_ids: torch.Tensor) -> torch.Tensor:
        logits = self.transformer.auto_model(**batch).logits
        return splade_max_pool(logits, batch["attention_mask"], special_ids)


class SparseSum(InputModule):
    """The document route of a composite model: ``Σ_p weight_p · w_p(d)`` over its parts.

    Args:
        parts: one dict per part, as saved in ``config.json``: ``kind`` (``"mlm"`` or ``"tied"``),
            ``source`` (a model alias, or a folder relative to this module's folder), ``weight``,
            ``max_seq_length``, and for ``"tied"`` parts ``top_k`` and ``bias_start``.
        modules: the loaded parts (built from ``parts`` when ``None``).
        biases: saved per-token biases of the tied parts, ``{"part<i>.bias": tensor}``.
    """

    config_keys = ["parts"]
    save_in_root = False

    def __init__(self, parts: list[dict], modules: list[torch.nn.Module] | None = None,
                 biases: dict[str, torch.Tensor] | None = None, base: Path | None = None) -> None:
        super().__init__()
        for spec in parts:
            if spec.get("kind") not in PART_KINDS:
                raise InputError(f"unknown part kind {spec.get('kind')!r}; expected one of {PART_KINDS}",
                                 field="parts.kind")
        self.parts = [dict(spec) for spec in parts]
        if modules is None:
            modules = [_load_part(spec, (biases or {}).get(f"part{i}.bias"), base) for i, spec in enumerate(parts)]
        self.part_modules = torch.nn.ModuleList(modules)
        self.tokenizer = self.part_modules[0].tokenizer
        vocabularies = {len(m.tokenizer) for m in self.part_modules}
        if len(vocabularies) != 1:
            raise InputError(f"the parts' vocabularies differ in size ({sorted(vocabularies)}): their vectors "
                             "cannot be added", field="parts")
        self.special_ids = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)
        self.max_seq_length = max(spec.get("max_seq_length", 512) for spec in self.parts)

    @property
    def weights(self) -> list[float]:
        return [float(spec.get("weight", 1.0)) for spec in self.parts]

    def tokenize_part(self, i: int, texts: list[str], device: torch.device | None = None) -> dict:
        spec, module = self.parts[i], self.part_modules[i]
        batch = module.tokenizer(texts, padding=True, truncation=True, max_length=spec.get("max_seq_length", 512),
                                 return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items()} if device is not None else dict(batch)

    def preprocess(self, inputs: list[str], prompt: str | None = None, **kwargs) -> dict[str, Any]:
        if prompt:
            inputs = self._prepend_prompt(inputs, prompt)
        features: dict[str, Any] = {}
        for i in range(len(self.parts)):
            for key, value in self.tokenize_part(i, list(inputs)).items():
                features[f"part{i}_{key}"] = value
        # sentence-transformers reads these two for batching and lengths
        features["input_ids"], features["attention_mask"] = features["part0_input_ids"], features["part0_attention_mask"]
        return features

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        total = None
        for i, (module, weight) in enumerate(zip(self.part_modules, self.weights)):
            prefix = f"part{i}_"
            batch = {k[len(prefix):]: v for k, v in features.items() if k.startswith(prefix)}
            vector = weight * module(batch, self.special_ids.to(batch["input_ids"].device))
            total = vector if total is None else total + vector
        features["sentence_embedding"] = total
        return features

    def get_embedding_dimension(self) -> int:
        return len(self.tokenizer)

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.save_tokenizer(output_path)
        biases = {f"part{i}.bias": m.bias.detach().float().contiguous() for i, m in enumerate(self.part_modules)
                  if isinstance(m, TiedSpladePart)}
        if biases:
            save_file(biases, str(Path(output_path) / _WEIGHTS_FILE))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
             cache_folder: str | None = None, revision: str | None = None, local_files_only: bool = False,
             **kwargs) -> SparseSum:
        local = Path(model_name_or_path) / subfolder
        # a local folder as it is; a hub repository's sub-folder downloaded by sentence-transformers' helper
        folder = local if local.is_dir() else Path(cls.load_dir_path(
            model_name_or_path, subfolder=subfolder, token=token, cache_folder=cache_folder, revision=revision,
            local_files_only=local_files_only) or local)
        config_path = folder / cls.config_file_name
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("file not found", path=config_path) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"not valid JSON ({exc})", path=config_path) from None
        weights_path = folder / _WEIGHTS_FILE
        biases = load_file(str(weights_path)) if weights_path.exists() else {}
        return cls(config["parts"], biases=biases, base=folder)


def _load_part(spec: dict, bias: torch.Tensor | None, base: Path | None) -> torch.nn.Module:
    from sentence_transformers.base.modules.transformer import Transformer

    from idfsplade.model.registry import resolve_model

    source = spec["source"]
    if base is not None and (base / source).is_dir():
        source = str(base / source)
    if spec["kind"] == "mlm":
        from idfsplade.model.inference_free import document_modules, load_sparse_encoder

        path = resolve_model(source)
        if (Path(path) / "modules.json").exists():  # a saved inference-free model: its document route
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlm, pooling = document_modules(load_sparse_encoder(path))
            mlm.max_seq_length = spec.get("max_seq_length", mlm.max_seq_length)
        else:  # a bare masked LM
            mlm = Transformer(path, transformer_task="fill-mask", max_seq_length=spec.get("max_seq_length", 512))
            pooling = SpladePooling(pooling_strategy="max", activation_function="relu",
                                    embedding_dimension=len(mlm.tokenizer))
        return MlmPart(mlm, pooling)
    transformer = Transformer(resolve_model(source), max_seq_length=spec.get("max_seq_length", 256))
    return TiedSpladePart(transformer, bias=bias, bias_start=spec.get("bias_start", -2.0), top_k=spec.get("top_k"))


def is_composite(name_or_path: str) -> bool:
    """Whether a model folder (or alias) is a composite, from its ``router_config.json`` alone (no loading)."""
    from idfsplade.model.registry import resolve_model

    router = Path(resolve_model(name_or_path)) / "router_config.json"
    try:
        types = json.loads(router.read_text(encoding="utf-8")).get("types", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(types, dict) and any(str(t).endswith(".SparseSum") for t in types.values())


def composite_of(model) -> SparseSum | None:
    """The :class:`SparseSum` of a model's document route, or ``None`` for a single-encoder model."""
    from sentence_transformers.base.modules.router import Router

    first = model[0]
    route = first.sub_modules["document"] if isinstance(first, Router) else list(model)
    return route[0] if len(route) == 1 and isinstance(route[0], SparseSum) else None


def build_composite_encoder(parts: list[dict], idf, biases: dict[str, torch.Tensor] | None = None,
                            device: str | None = None):
    """Router(query = SparseStaticEmbedding(idf), document = [SparseSum(parts)]) as a ``SparseEncoder``.

    ``idf`` is an :class:`~idfsplade.idf.IdfTable` or a path to an ``idf.json`` (read with the first part's
    tokenizer; a token missing from it weighs 1.0, as in OpenSearch).
    """
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules.router import Router
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding

    from idfsplade.idf import IdfTable

    document = SparseSum(parts, biases=biases)
    if not isinstance(idf, IdfTable):
        idf = IdfTable.load(idf, document.tokenizer)
    query = SparseStaticEmbedding(tokenizer=document.tokenizer, weight=torch.from_numpy(idf.weights.copy()),
                                  frozen=True)
    router = Router.for_query_document(query_modules=[query], document_modules=[document])
    return SparseEncoder(modules=[router], similarity_fn_name="dot", device=device)
