"""Run one training job from a :class:`~idfsplade.train.config.RunConfig`.

Everything heavy is sentence-transformers' ``SparseEncoderTrainer`` (HF ``Trainer`` underneath):
optimiser, schedule, gradient accumulation, bf16, checkpoints with optimiser/scheduler/RNG state,
resume (``get_last_checkpoint``: the same command continues a killed run, the data order replayed
by seed and the consumed batches skipped), logging, and multi-GPU through accelerate
(``accelerate launch "$(which idfsplade)" train CONFIG`` or ``torchrun``). This module only assembles
the parts: IDF, examples, teachers, student, loss.

The run folder holds ``checkpoints/`` (HF), ``samples.jsonl`` (the example ids of every step, for
audits of resume), ``model/`` (the final ``SparseEncoder`` + ``idf.json``, written atomically),
``log_history.json`` and ``config.json``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import PartialState
from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import SpladeRegularizerWeightSchedulerCallback
from transformers import set_seed

from idfsplade.atomic import atomic_dir, atomic_write_json, refusal_cause
from idfsplade.data import BeirDataset
from idfsplade.errors import InputError, WriteError
from idfsplade.idf import IdfTable
from idfsplade.idf.cache import corpus_idf
from idfsplade.integrity import write_manifest_file
from idfsplade.model.inference_free import load_tokenizer, save_idf_json
from idfsplade.model.registry import DEFAULT_DENSE_MODEL
from idfsplade.train.config import RunConfig
from idfsplade.train.evaluation import sampled_beir_evaluator
from idfsplade.train.examples import ExampleSet, build_supervised, build_weak
from idfsplade.train.losses import build_loss
from idfsplade.train.scorer import EnsembleScorer
from idfsplade.train.stages import StageTimer
from idfsplade.model.composite import is_composite
from idfsplade.model.inference_free import NOT_TRAINABLE
from idfsplade.train.student import build_student, set_max_seq_length
from idfsplade.train.teachers import BM25Teacher, DenseTeacher, SparseSiameseTeacher, Teacher


class RecordingTrainer(SparseEncoderTrainer):
    """``SparseEncoderTrainer`` that appends the example ids of each micro-batch to ``samples.jsonl``.

    The batch's ``label`` column *is* the example index (the loss needs it to look up teacher
    targets), so the record is exact, and a resumed run can be checked for repeated or skipped batches.
    """

    def __init__(self, *args, samples_path: Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.samples_path = samples_path

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and hasattr(self.loss, "set_step"):
            self.loss.set_step(self.state.global_step)  # the query head's column sample: f(seed, step)
        if model.training and self.is_world_process_zero():
            record = {"step": self.state.global_step + 1, "examples": inputs["label"].tolist()}
            with self.samples_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def load_examples(config: RunConfig) -> ExampleSet:
    data = config.data
    dataset = BeirDataset(data.dataset)
    key = (f"{dataset.name}-{data.kind}-{data.split if data.kind == 'supervised' else 'corpus'}"
           f"-n{data.negatives}-{'+'.join(data.miners)}-s{config.seed}"
           + (f"-max{data.max_pairs}" if data.max_pairs else "")
           + (f"-pq{'+'.join(data.pseudo_queries)}x{data.pseudo_queries_per_doc}" if data.kind == "weak" else ""))
    folder = Path(data.cache_dir) / key
    if data.kind == "supervised":
        return build_supervised(dataset, data.split, folder, data.negatives, tuple(data.miners), seed=config.seed)
    # weak: pseudo-queries from the corpus alone (idfsplade adapt); queries and qrels are never read
    return build_weak(dataset, folder, data.negatives, tuple(data.miners), max_pairs=data.max_pairs,
                      seed=config.seed, generators=tuple(data.pseudo_queries), per_doc=data.pseudo_queries_per_doc)


def build_teachers(config: RunConfig, examples: ExampleSet) -> list[tuple[Teacher, float]]:
    teachers: list[tuple[Teacher, float]] = []
    for member in config.teachers.members:
        if member.kind == "dense":
            teacher: Teacher = DenseTeacher(member.model or DEFAULT_DENSE_MODEL)
        elif member.kind == "sparse":
            teacher = SparseSiameseTeacher(member.model or "splade-tiny")
        else:
            teacher = BM25Teacher(list(examples.passages.values()))
        teachers.append((teacher, member.weight))
    return teachers


def load_idf(config: RunConfig, work: Path) -> IdfTable:
    tokenizer = load_tokenizer(config.student.model)  # a bare MLM or a trained run's SparseEncoder folder
    if config.student.idf == "corpus":
        return corpus_idf(BeirDataset(config.data.dataset), tokenizer, work / "idf-corpus.json")
    return IdfTable.load(config.student.idf, tokenizer)


def _bf16(setting: str) -> bool:
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return setting == "true"


def training_arguments(config: RunConfig, checkpoints: Path, n_candidates: int) -> SparseEncoderTrainingArguments:
    t, ev = config.training, config.evaluation
    evaluate_steps = ev.dataset is not None and ev.steps > 0
    return SparseEncoderTrainingArguments(
        output_dir=str(checkpoints), seed=config.seed, data_seed=config.seed,
        num_train_epochs=t.epochs, max_steps=t.max_steps, per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay, bf16=_bf16(t.bf16),
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        eval_strategy="steps" if evaluate_steps else "no", eval_steps=ev.steps if evaluate_steps else None,
        logging_steps=t.logging_steps, report_to="none", dataloader_num_workers=t.dataloader_workers,
        # pinned memory only speeds up copies to a GPU; on a CPU-only machine torch warns about it
        dataloader_pin_memory=torch.cuda.is_available(),
        router_mapping={"query": "query", **{f"doc_{i}": "document" for i in range(n_candidates)}},
        disable_tqdm=True)


def train(config: RunConfig, timer: StageTimer | None = None) -> Path:
    """Train (or resume) the run of ``config``; returns the folder of the saved model.

    ``timer`` receives the durations of the stages (IDF, training data, teacher vectors, training).
    """
    if is_composite(config.student.model):  # before any data or teacher work, not after it
        raise InputError(NOT_TRAINABLE, field="student.model")
    timer = timer or StageTimer()
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    set_seed(config.seed)
    work = Path(config.output_dir)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(work / "config.json", config.to_dict())
    # Multi-GPU: rank 0 builds the caches (IDF, examples, teacher vectors), the others then read them.
    with PartialState().main_process_first():
        with timer.stage("IDF"):
            idf = load_idf(config, work)
        with timer.stage("training data"):
            examples = load_examples(config)
        with timer.stage(f"teacher vectors ({', '.join(m.kind for m in config.teachers.members)})"):
            scorer = EnsembleScorer.build(examples, build_teachers(config, examples), config.teachers.scale,
                                          Path(config.teachers.cache_dir) if config.teachers.precompute else None)
    set_seed(config.seed)  # teacher loading must not shift the student's initial RNG state
    student = build_student(config.student.model, idf, config.student.query_weighting,
                            config.student.max_seq_length)
    train_dataset = to_dataset(examples)
    loss = build_loss(student, scorer, config.loss, seed=config.seed)
    n_candidates = len(examples.examples[0].candidates)
    checkpoints = work / "checkpoints"
    evaluator = None
    if config.evaluation.dataset is not None:
        ev = config.evaluation
        evaluator = sampled_beir_evaluator(BeirDataset(ev.dataset), ev.split, ev.queries, ev.distractors, config.seed)
    trainer = RecordingTrainer(
        model=student, args=training_arguments(config, checkpoints, n_candidates), train_dataset=train_dataset,
        loss=loss, evaluator=evaluator, samples_path=work / "samples.jsonl",
        callbacks=[SpladeRegularizerWeightSchedulerCallback(loss, "quadratic", config.loss.flops_warmup_ratio)])
    resume = last_complete_checkpoint(checkpoints)
    with timer.stage(f"training ({len(examples)} examples, resume from {resume})" if resume
                     else f"training ({len(examples)} examples)"):
        with dropping_partial_checkpoints(checkpoints):
            trainer.train(resume_from_checkpoint=resume)
    if evaluator is not None:
        with timer.stage("sampled evaluation"):
            trainer.log(evaluator(student))
    if trainer.is_world_process_zero():
        atomic_write_json(work / "log_history.json", trainer.state.log_history)
        save_student(student, config, work / "model")
    trainer.accelerator.wait_for_everyone()
    return work / "model"


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest ``checkpoint-N`` whose save finished. HF writes a checkpoint in place and
    ``get_last_checkpoint`` returns the highest N even when a kill cut its save short; the trainer
    state is written last, so a folder without ``trainer_state.json`` is half-written: skip it."""
    if not checkpoints.is_dir():
        return None
    done = [c for c in checkpoints.glob("checkpoint-*")
            if c.name.split("-")[-1].isdigit() and (c / "trainer_state.json").exists()]
    return str(max(done, key=lambda c: int(c.name.split("-")[-1]))) if done else None


@contextlib.contextmanager
def dropping_partial_checkpoints(checkpoints: Path) -> Iterator[None]:
    """HF's Trainer writes each checkpoint in place, not through :mod:`idfsplade.atomic`: when the disk
    refuses a write (full, read-only), the half-written checkpoint is removed (the complete ones stay,
    so a rerun resumes from the last of them) and the error is one line naming the folder."""
    try:
        yield
    except BaseException as exc:
        cause = refusal_cause(exc, checkpoints)
        if cause is None:
            raise
        partial = [c for c in checkpoints.glob("checkpoint-*") if not (c / "trainer_state.json").exists()]
        for folder in partial:
            shutil.rmtree(folder, ignore_errors=True)
        resume = last_complete_checkpoint(checkpoints)
        raise WriteError(checkpoints, cause, f"the half-written checkpoint is removed; a rerun resumes from "
                         f"{Path(resume).name}" if resume else "no checkpoint was complete") from None


def to_dataset(examples: ExampleSet):
    """Columns ``query, doc_0 … doc_{n-1}, label``; ``label`` is the example index (see the loss)."""
    from datasets import Dataset

    n = len(examples.examples[0].candidates)
    if any(len(e.candidates) != n for e in examples.examples):
        raise ValueError("every example needs the same number of candidates")
    columns = {"query": [e.query for e in examples.examples]}
    for i in range(n):
        columns[f"doc_{i}"] = [examples.passages[e.candidates[i]] for e in examples.examples]
    columns["label"] = list(range(len(examples)))
    return Dataset.from_dict(columns)


def save_student(student, config: RunConfig, folder: Path) -> Path:
    """Save the ``SparseEncoder`` (loadable by :func:`~idfsplade.model.load_sparse_encoder`) + ``idf.json``."""
    set_max_seq_length(student, config.student.save_max_seq_length)
    with atomic_dir(folder) as tmp:
        student.save(str(tmp))
        save_idf_json(student, tmp / "idf.json")
        write_manifest_file(tmp)  # checksums.json: `idfsplade check` verifies the saved model
    return folder
