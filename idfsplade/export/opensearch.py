"""Export an inference-free model as the two OpenSearch ML-Commons local models it is served as.

- ``SPARSE_ENCODING`` (ingest side): a zip holding one TorchScript file and ``tokenizer.json``.
- ``SPARSE_TOKENIZE`` (query side): a zip holding ``tokenizer.json`` and ``idf.json``; no network.

Checked against ML-Commons and opensearch-py-ml sources (``DLModel.loadModel``,
``SentenceTransformerTranslator``, ``SparseEncodingTranslator``, ``SparseTokenizerModel``,
``MLRegisterModelInput``, ``opensearch_py_ml/ml_models/sparse_encoding_model.py`` and
``sparse_tokenize_model.py``) and the "Custom local models" docs:

- the zip is flat; ML-Commons unzips it, takes the only ``*.pt`` file and reads ``tokenizer.json``
  beside it with DJL's HuggingFace tokenizer (special tokens added, truncation from the file);
- DJL names the inputs ``input1.input_ids`` / ``input1.attention_mask``, which its PyTorch engine
  passes as *one* ``Dict[str, Tensor]`` argument; the output must be ``{"output": sparse_vector}``;
  ML-Commons maps each non-zero index to a token string with ``tokenizer.decode([id], True)``;
- the tokenizer model gives each unique query token ``idf.get(token, 1.0)``, as ours does;
- the registration body is opensearch-py-ml's ``ml-commons_model_config.json``: name, version,
  ``model_format``, ``function_name``, ``model_content_size_in_bytes``, ``model_content_hash_value``
  (sha256 of the zip) and ``model_config``. ML-Commons >= 2.11 accepts sparse models without a
  ``model_config``, older versions reject a URL registration without one, so it is always written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from sentence_transformers import SparseEncoder
from tokenizers import Tokenizer

from idfsplade.atomic import atomic_open, atomic_write_json
from idfsplade.errors import InputError
from idfsplade.idf import IdfTable
from idfsplade.model.composite import SparseSum, TiedSpladePart, composite_of, keep_top_k
from idfsplade.model.inference_free import document_modules, query_weights
from idfsplade.model.pooling import splade_max_pool

ENCODING_ZIP = "sparse_encoding.zip"
TOKENIZE_ZIP = "sparse_tokenize.zip"
TORCHSCRIPT_NAME = "model.pt"
# Fixed entry timestamps: the same tokenizer and idf give byte-identical zips (and hashes).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Traced on a padded batch: transformers may skip mask work when a mask is all ones, and a trace
# records only the branch it ran, so tracing on unpadded input would drop padding handling.
_TRACE_TEXTS = ["a short text", "a longer text, so that the first one of the two is padded to its length"]


class SparseEncodingModule(torch.nn.Module):
    """``{"input_ids", "attention_mask"} -> {"output": w}`` with ``w`` as :class:`DocumentEncoder` computes it.

    ``w[j] = log(1 + relu(max_i logit[i, j]))`` over unmasked positions, special tokens set to 0.
    """

    def __init__(self, masked_lm: torch.nn.Module, special_ids: list[int]) -> None:
        super().__init__()
        self.masked_lm = masked_lm
        self.register_buffer("special_ids", torch.tensor(special_ids, dtype=torch.long))

    def forward(self, input: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: A002 - DJL's name
        mask = input["attention_mask"]
        logits = self.masked_lm(input_ids=input["input_ids"], attention_mask=mask).logits.float()
        return {"output": splade_max_pool(logits, mask, self.special_ids)}


class CompositeEncodingModule(torch.nn.Module):
    """A composite model (:class:`~idfsplade.model.composite.SparseSum`) as one traced module: ``Σ_p α_p · w_p``.

    ML-Commons tokenizes once, with the longest part's truncation; a part with a shorter limit reads the first
    ``max_seq_length`` positions, the last of them set to ``[SEP]`` where the text ran past it, which is what
    its own tokenizer gives (so the trace equals :class:`DocumentEncoder`'s fp32 vectors).
    """

    def __init__(self, composite: SparseSum, special_ids: list[int], sep_id: int) -> None:
        super().__init__()
        self.parts = torch.nn.ModuleList(composite.part_modules)
        self.limits = [int(spec.get("max_seq_length", 512)) for spec in composite.parts]
        self.weights = composite.weights
        self.register_buffer("special_ids", torch.tensor(special_ids, dtype=torch.long))
        self.sep_id = sep_id

    def forward(self, input: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: A002 - DJL's name
        ids, mask = input["input_ids"], input["attention_mask"]
        lengths = mask.sum(dim=1, keepdim=True)
        total = None
        for part, limit, weight in zip(self.parts, self.limits, self.weights):
            part_ids, part_mask = ids[:, :limit], mask[:, :limit]
            cut = lengths > limit
            part_ids = torch.cat([part_ids[:, :-1], torch.where(cut, torch.full_like(part_ids[:, -1:], self.sep_id),
                                                                part_ids[:, -1:])], dim=1)
            if isinstance(part, TiedSpladePart):
                states = part.transformer.auto_model(input_ids=part_ids, attention_mask=part_mask).last_hidden_state
                logits = states @ part.embeddings.t() + part.bias
                vector = keep_top_k(splade_max_pool(logits, part_mask, self.special_ids), part.top_k)
            else:
                logits = part.transformer.auto_model(input_ids=part_ids, attention_mask=part_mask).logits.float()
                vector = splade_max_pool(logits, part_mask, self.special_ids)
            total = weight * vector if total is None else total + weight * vector
        return {"output": total}


def _document_side(model: SparseEncoder):
    """``(traceable module, tokenizer, max_length, transformers config)`` of the document route."""
    composite = composite_of(model)
    if composite is not None:
        tokenizer = composite.tokenizer
        module = CompositeEncodingModule(composite, sorted(set(tokenizer.all_special_ids)), tokenizer.sep_token_id)
        first = composite.part_modules[0].transformer
        return module, tokenizer, composite.max_seq_length, first.auto_model.config, first.auto_model
    mlm, pooling = document_modules(model)
    if pooling.pooling_strategy != "max" or pooling.activation_function != "relu":
        raise InputError(f"export supports SPLADE max pooling with relu (got {pooling.pooling_strategy} "
                         f"pooling, {pooling.activation_function} activation)")
    module = SparseEncodingModule(mlm.auto_model, sorted(set(mlm.tokenizer.all_special_ids)))
    return module, mlm.tokenizer, mlm.max_seq_length or 512, mlm.auto_model.config, mlm.auto_model


@dataclass(frozen=True)
class ExportedModel:
    """One ML-Commons model: its zip and the registration body (also written as JSON beside the zip)."""

    zip_path: Path
    registration_path: Path
    registration: dict


def trace_document_model(model: SparseEncoder) -> torch.jit.ScriptModule:
    """Trace the document route into TorchScript (CPU, eval mode); a composite model traces as one module."""
    module, tokenizer, _, _, auto_model = _document_side(model)
    if next(auto_model.parameters()).device.type != "cpu":
        raise InputError("export a model loaded on the CPU (device='cpu'): a trace records device constants")
    module = module.eval()
    batch = tokenizer(_TRACE_TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    example = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    # transformers warns that two Python booleans become constants; both are constant for BERT
    # (mask length == key length; a mask is always given, so attention is never causal), and the
    # tests check the trace on other lengths, batch sizes and padding.
    with torch.no_grad():
        return torch.jit.trace(module, (example,), strict=False)  # strict=False: dict output


def export_sparse_encoding(model: SparseEncoder, out_dir: str | Path, name: str, version: str = "1.0.0",
                           max_length: int | None = None) -> ExportedModel:
    """Write ``sparse_encoding.zip`` (``model.pt`` + ``tokenizer.json``) and its registration JSON."""
    _, tokenizer, own_max_length, config, _ = _document_side(model)
    max_length = max_length or own_max_length
    traced = trace_document_model(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / ENCODING_ZIP
    # TorchScript is serialised in memory: torch's zip writer aborts the process (C++ terminate, no
    # Python exception) when the disk fills under it, so only the atomic zip writer touches the disk.
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    with _atomic_zip(zip_path) as archive:
        with archive.open(_entry(TORCHSCRIPT_NAME, zipfile.ZIP_STORED), "w") as dst:
            dst.write(buffer.getbuffer())
        del buffer
        archive.writestr(_entry("tokenizer.json"), _tokenizer_json(tokenizer, max_length))
    model_config = {"model_type": config.model_type, "embedding_dimension": len(tokenizer),
                    "framework_type": "huggingface_transformers", "all_config": config.to_json_string()}
    description = (f"{name}: inference-free sparse document encoder (SPLADE max pooling, special tokens "
                   f"zeroed); use with its SPARSE_TOKENIZE model at query time.")
    return _register(zip_path, "SPARSE_ENCODING", name, version, description, model_config)


def export_sparse_tokenize(model: SparseEncoder, out_dir: str | Path, name: str, version: str = "1.0.0"
                           ) -> ExportedModel:
    """Write ``sparse_tokenize.zip`` (``tokenizer.json`` + ``idf.json`` of the query route) and its JSON."""
    weights, tokenizer = query_weights(model)
    max_length = model[0].sub_modules["query"][0].max_seq_length or tokenizer.model_max_length
    idf_json = json.dumps(IdfTable(weights, tokenizer).to_dict(), ensure_ascii=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / TOKENIZE_ZIP
    with _atomic_zip(zip_path) as archive:
        archive.writestr(_entry("tokenizer.json"), _tokenizer_json(tokenizer, max_length))
        archive.writestr(_entry("idf.json"), idf_json)
    model_config = {"model_type": "sparse", "embedding_dimension": len(tokenizer),
                    "framework_type": "huggingface_transformers"}
    description = f"{name}: query tokenizer weighting each unique token by its IDF (no model inference)."
    return _register(zip_path, "SPARSE_TOKENIZE", name, version, description, model_config)


def export_opensearch(model: SparseEncoder, out_dir: str | Path, name: str, version: str = "1.0.0",
                      max_length: int | None = None) -> tuple[ExportedModel, ExportedModel]:
    """Both models: ``(sparse_encoding, sparse_tokenize)``."""
    return (export_sparse_encoding(model, out_dir, f"{name}-doc", version, max_length),
            export_sparse_tokenize(model, out_dir, f"{name}-tokenizer", version))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _register(zip_path: Path, function_name: str, name: str, version: str, description: str,
              model_config: dict) -> ExportedModel:
    body = {"name": name, "version": version, "description": description, "model_format": "TORCH_SCRIPT",
            "function_name": function_name, "model_content_size_in_bytes": zip_path.stat().st_size,
            "model_content_hash_value": sha256_file(zip_path), "model_config": model_config}
    json_path = zip_path.with_suffix(".json")
    atomic_write_json(json_path, body, indent=2)
    return ExportedModel(zip_path, json_path, body)


def _tokenizer_json(tokenizer, max_length: int) -> str:
    """The fast tokenizer's ``tokenizer.json`` with truncation set: DJL reads the limit from the file."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(max_length)
    backend.no_padding()  # DJL pads itself
    return backend.to_str()


def _entry(arcname: str, compress_type: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
    info.compress_type = compress_type  # weights barely deflate: stored; JSON deflates ~4x
    info.external_attr = 0o644 << 16
    return info


@contextlib.contextmanager
def _atomic_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    """A zip written under a temporary name in the same folder, renamed into place once complete."""
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", allowZip64=True) as archive:
        yield archive
