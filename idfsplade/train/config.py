"""One YAML file defines a training run; this module reads it into typed dataclasses.

Unknown keys and wrongly typed values raise :class:`~idfsplade.errors.InputError` with the file, the
line and the dotted field name (``loss.flops_weight``), so a typo never silently trains the default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from idfsplade.errors import InputError
from idfsplade.train.pseudo_queries import DEFAULT_PSEUDO_QUERIES, PSEUDO_QUERY_GENERATORS


@dataclass
class StudentConfig:
    model: str = "splade-tiny"  # alias, hub id or folder of a masked LM (or a saved SparseEncoder)
    max_seq_length: int = 256  # training truncation; the saved model keeps ``save_max_seq_length``
    save_max_seq_length: int = 512
    query_weighting: str = "idf"  # idf (IDF-SPLADE) | binary (plain SPLADE-doc)
    idf: str = "corpus"  # "corpus" (of data.dataset) or a path to an idf.json


@dataclass
class DataConfig:
    kind: str = "supervised"  # supervised (qrels split + mined negatives) | weak (pseudo-queries)
    dataset: str = "datasets/scifact"
    split: str = "train"
    negatives: int = 7
    miners: list[str] = field(default_factory=lambda: ["bm25"])  # bm25, dense
    max_pairs: int | None = None  # weak only
    # weak only: the mixture of pseudo-query generators (the registry train/pseudo_queries.py
    # PSEUDO_QUERY_GENERATORS: title, first_sentence, sentence, span, terms), each tried in random order per document
    pseudo_queries: list[str] = field(default_factory=lambda: list(DEFAULT_PSEUDO_QUERIES))
    pseudo_queries_per_doc: int = 1  # weak only
    cache_dir: str = "runs/cache/train-data"


@dataclass
class TeacherConfig:
    kind: str = "dense"  # dense | sparse | bm25
    model: str | None = None  # dense: all-MiniLM-L6-v2, sparse: splade-tiny by default
    weight: float = 1.0


@dataclass
class TeachersConfig:
    members: list[TeacherConfig] = field(default_factory=lambda: [TeacherConfig("dense"), TeacherConfig("sparse")])
    scale: float = 30.0  # S: 10 pre-training, 30 fine-tuning (paper)
    precompute: bool = True  # encode every query/passage once and cache, else encode per batch
    cache_dir: str = "runs/cache/teachers"


@dataclass
class LossConfig:
    objective: str = "kl"  # kl | margin_mse | info_nce
    scope: str = "in_batch"  # in_batch (paper) | own_list
    student_temperature: float = 1.0
    teacher_temperature: float = 1.0
    flops_weight: float = 1e-4  # λ_d at the end of warm-up
    flops_warmup_ratio: float = 1 / 3  # quadratic warm-up over this share of the steps
    l0_threshold: int | None = None  # FLOPS only on documents with more active dims than this
    # Document head (idfsplade/train/query_head.py): "sample" computes logits only at the batch's query
    # columns (exact for the ranking loss) + an unbiased FLOPS estimate from flops_sample_columns others;
    # "periodic": the full head every flops_full_every steps (λ·N there); "query": no FLOPS; "full": all.
    head: str = "sample"
    flops_sample_columns: int = 1024
    flops_full_every: int = 10


@dataclass
class TrainingConfig:
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 2  # queries per device step (each with 1 + negatives passages)
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    bf16: str = "auto"  # auto (on when a bf16 GPU is present) | true | false
    save_steps: int = 100
    save_total_limit: int = 2
    logging_steps: int = 10
    torch_threads: int | None = None  # CPU threads; None leaves torch's default
    dataloader_workers: int = 0


@dataclass
class EvalConfig:
    dataset: str | None = "datasets/scifact"  # BEIR folder for periodic evaluation (None: off)
    split: str = "test"
    steps: int = 0  # evaluate every N steps (0: only at the end of training)
    queries: int = 50  # sampled queries; corpus = their judged docs + BM25 distractors
    distractors: int = 20


@dataclass
class RunConfig:
    output_dir: str = "runs/train/run"
    seed: int = 42
    student: StudentConfig = field(default_factory=StudentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    teachers: TeachersConfig = field(default_factory=TeachersConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The allowed values of the string options. The lists of the torch modules (losses.OBJECTIVES / SCOPES,
# query_head.HEADS, student.QUERY_WEIGHTINGS) are repeated here so that reading a config imports no torch;
# tests/test_registries.py checks that they agree. Pseudo-query generators are their registry itself, so
# one registered by a user is a valid choice.
CHOICES = {"student.query_weighting": ("idf", "binary"), "data.kind": ("supervised", "weak"),
           "loss.objective": ("kl", "margin_mse", "info_nce"),
           "loss.head": ("full", "query", "sample", "periodic"), "loss.scope": ("in_batch", "own_list"),
           "training.bf16": ("auto", "true", "false"), "teachers.members.kind": ("dense", "sparse", "bm25"),
           "data.pseudo_queries": PSEUDO_QUERY_GENERATORS}


def parse_overrides(pairs: list[str] | None) -> dict:
    """``--set key=value`` pairs as the ``overrides`` of :func:`load_config`: dotted keys, YAML values."""
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"--set expects key=value, got {pair!r}", field="--set")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read ``path``; ``overrides`` (dotted keys, e.g. ``{"loss.flops_weight": 0}``) win over the file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", path=path, line=line) from None
    try:
        data = yaml.safe_load(text) or {}
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"malformed YAML ({getattr(exc, 'problem', exc)})", path=path,
                         line=mark.line + 1 if mark else None) from None
    for key, value in (overrides or {}).items():
        target = data
        *parents, last = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    config = _build(RunConfig, data, node, path, "")
    if config.loss.l0_threshold is not None and config.loss.head in ("query", "sample"):
        loss_node = _child(node, "loss")
        raise InputError("an l0 threshold counts every column of a document: use head full or periodic",
                         path=path, line=_line(loss_node, "head") or _line(loss_node, "l0_threshold"),
                         field="loss.head")
    return config


def _line(node, key: str) -> int | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return k.start_mark.line + 1
    return None


def _child(node, key: str):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    return None


def _build(cls, data: Any, node, path: Path, prefix: str):
    if not isinstance(data, dict):
        raise InputError("expected a mapping", path=path, line=node.start_mark.line + 1 if node else None,
                         field=prefix.rstrip(".") or None)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise InputError(f"unknown key (expected one of {sorted(fields)})", path=path, line=_line(node, key),
                             field=name)
        kwargs[key] = _convert(hints[key], value, _child(node, key), path, name, _line(node, key))
    return cls(**kwargs)


def _convert(hint, value, node, path: Path, name: str, line: int | None):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, node, path, name + ".")
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, node, path, name, line)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise InputError("expected a list", path=path, line=line, field=name)
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [None] * len(value)
        return [_convert(item, v, n, path, f"{name}[{i}]", n.start_mark.line + 1 if n is not None else line)
                for i, (v, n) in enumerate(zip(value, nodes))]
    if hint is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)  # YAML reads 1e-4 (no dot) as a string
        except ValueError:
            pass
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif hint is str and isinstance(value, (str, bool)):
        value = str(value).lower() if isinstance(value, bool) else value
        allowed = CHOICES.get(_choice_key(name))
        if allowed and value not in allowed:
            raise InputError(f"must be one of {list(allowed)}, got {value!r}", path=path, line=line, field=name)
        return value
    elif hint is bool and isinstance(value, bool):
        return value
    raise InputError(f"expected {getattr(hint, '__name__', hint)}, got {value!r}", path=path, line=line, field=name)


def _choice_key(name: str) -> str:
    """``teachers.members[1].kind`` → ``teachers.members.kind``."""
    return re.sub(r"\[\d+\]", "", name)
