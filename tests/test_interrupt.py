"""Long commands killed with SIGKILL mid-way, then rerun: the result equals an uninterrupted run and
nothing half-written is read.

Each command runs as a real child process (the CLI's own ``main``). To kill it at a known point
rather than after a guessed delay, the child is started through a small wrapper that only changes
*when* things happen: at the chosen point it writes a marker file and sleeps, and the test sends
SIGKILL as soon as the marker appears. What is on disk at that moment is whatever the command had
written, temporary files included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # each test runs the command 3-5 times in fresh processes

WRAPPER = r"""
import json, os, sys, time

plan = json.loads(os.environ.get("IDFSPLADE_TEST_PLAN", "{}"))


def pause(tag):
    with open(plan["marker"] + ".tmp", "w") as f:
        f.write(tag)
    os.rename(plan["marker"] + ".tmp", plan["marker"])
    time.sleep(600)  # the test kills us here


if plan.get("shard_size"):
    from idfsplade.model.document import DocumentEncoder

    encode_to_store = DocumentEncoder.encode_to_store

    def small_shards(self, docs, path, shard_size=1024, **kwargs):
        return encode_to_store(self, docs, path, shard_size=plan["shard_size"], **kwargs)

    DocumentEncoder.encode_to_store = small_shards
if plan.get("pause_after_shard") is not None:
    from idfsplade.vectors.store import SparseMatrixStore

    write_shard = SparseMatrixStore.write_shard

    def write_then_pause(self, index, matrix, row_ids):
        write_shard(self, index, matrix, row_ids)
        if index == plan["pause_after_shard"]:
            pause("shard")

    SparseMatrixStore.write_shard = write_then_pause
if plan.get("pause_before_replace"):
    os_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == plan["pause_before_replace"]:
            pause("replace")
        return os_replace(src, dst, *args, **kwargs)

    os.replace = replace
if plan.get("pause_at_step") is not None:
    from idfsplade.train.trainer import RecordingTrainer

    compute_loss = RecordingTrainer.compute_loss

    def loss_or_pause(self, *args, **kwargs):
        if self.state.global_step == plan["pause_at_step"]:
            pause("step")
        return compute_loss(self, *args, **kwargs)

    RecordingTrainer.compute_loss = loss_or_pause
if plan.get("pause_saving_checkpoint") is not None:
    from idfsplade.train.trainer import RecordingTrainer

    save_rng_state = RecordingTrainer._save_rng_state

    def save_or_pause(self, output_dir):  # model and optimiser written, RNG and trainer state not yet
        if self.state.global_step == plan["pause_saving_checkpoint"]:
            pause("checkpoint")
        return save_rng_state(self, output_dir)

    RecordingTrainer._save_rng_state = save_or_pause

from idfsplade.cli import main

sys.argv = ["idfsplade", *sys.argv[1:]]
main()
"""


def run(args: list[str], cwd: Path, plan: dict | None = None, kill_on_marker: bool = False,
        timeout: float = 600) -> subprocess.CompletedProcess | None:
    """Run ``idfsplade ARGS`` in a fresh process; with ``kill_on_marker``, SIGKILL it when it reaches
    the plan's pause point (and check that it did)."""
    env = {**os.environ, "IDFSPLADE_TEST_PLAN": json.dumps(plan or {}), "TOKENIZERS_PARALLELISM": "false"}
    if not kill_on_marker:
        result = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, result.stderr[-3000:]
        return result
    marker = Path(plan["marker"])
    child = subprocess.Popen([sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"ended before its pause point ({child.returncode}): {child.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("never reached its pause point")
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    marker.unlink()
    return None


def temp_leftovers(folder: Path) -> list[str]:
    """Temporary files and folders (``.<name>.<random>.tmp``) an interrupted atomic write leaves."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp"))


def csr_folder(path: Path):
    from idfsplade.vectors import load_csr

    matrix, ids, meta = load_csr(path, mmap=False)
    return matrix, ids, meta


def assert_same_vectors(a: Path, b: Path) -> None:
    (ma, ia, _), (mb, ib, _) = csr_folder(a), csr_folder(b)
    assert ia == ib
    assert np.array_equal(ma.indptr, mb.indptr) and np.array_equal(ma.indices, mb.indices)
    np.testing.assert_allclose(ma.data, mb.data, rtol=1e-6, atol=1e-7)


def test_encode_killed_mid_way_resumes_to_the_same_vectors(tmp_path, adi_path):
    """ADI in shards of 32 documents: killed after shard 1 (of 3), rerun and killed again while the
    final store was being swapped into place, rerun: the uninterrupted run's vectors."""
    small = {"shard_size": 32}
    run(["encode", str(adi_path), "--out", str(tmp_path / "ref" / "docs")], tmp_path, small)

    out = tmp_path / "run" / "docs"
    marker = str(tmp_path / "marker")
    run(["encode", str(adi_path), "--out", str(out)], tmp_path,
        {**small, "pause_after_shard": 1, "marker": marker}, kill_on_marker=True)
    assert not (out / "meta.json").exists()  # no final store: nothing for a reader to take as done
    shards = out.with_name("docs.shards")
    assert sorted(p.name for p in shards.iterdir() if p.name.startswith("shard-")) == ["shard-000000", "shard-000001"]

    run(["encode", str(adi_path), "--out", str(out)], tmp_path,
        {**small, "pause_before_replace": "docs", "marker": marker}, kill_on_marker=True)
    assert not (out / "meta.json").exists() and temp_leftovers(out.parent)  # the complete store, still aside
    assert sorted(p.name for p in shards.iterdir() if p.name.startswith("shard-")) == [
        "shard-000000", "shard-000001", "shard-000002"]

    run(["encode", str(adi_path), "--out", str(out)], tmp_path, small)
    assert_same_vectors(out, tmp_path / "ref" / "docs")
    assert not shards.exists()


def test_index_killed_mid_way_keeps_the_old_index_and_rebuilds_the_same(tmp_path, adi_path, tiny_encoder, adi_idf):
    """`index` killed while writing the document store into the new folder: the previous index is
    still there, whole and readable; the rerun equals an uninterrupted build."""
    from idfsplade.index import InvertedIndex
    from idfsplade.model import DocumentEncoder, model_query_encoder
    from idfsplade.search.index_folder import index_info, write_index
    from idfsplade.vectors import PruneConfig, load_csr, prune_rows

    # what `encode` writes, made here: only `index` is under test
    adi_idf.save(tmp_path / "idf.json")
    corpus = adi_path / "corpus.jsonl"
    docs = tmp_path / "docs"
    from idfsplade.data import document_text, iter_corpus

    DocumentEncoder(tiny_encoder).encode_to_store(
        ((d.id, document_text(d)) for d in iter_corpus(corpus)), docs,
        extra={"provenance": {"model": "splade-tiny", "max_length": 512, "prune": {}, "corpus": str(corpus)},
               "idf_file": str(tmp_path / "idf.json")})
    matrix, ids, meta = load_csr(docs)
    query = model_query_encoder(tiny_encoder)
    ref, out = tmp_path / "ref", tmp_path / "index"
    write_index(InvertedIndex.from_csr(matrix, ids, info=index_info(meta)), ref, query, corpus)
    pruned = prune_rows(matrix, PruneConfig(top_k=20))
    write_index(InvertedIndex.from_csr(pruned, ids, info=index_info(meta)), out, query, corpus)  # the "old" index
    old_meta = (out / "meta.json").read_bytes()

    marker = str(tmp_path / "marker")
    run(["index", str(docs), "--out", str(out)], tmp_path, {"pause_before_replace": "documents.jsonl", "marker": marker},
        kill_on_marker=True)
    assert (out / "meta.json").read_bytes() == old_meta  # untouched: the new one was being built aside
    old = InvertedIndex.load(out)  # loads whole, and is the pruned one
    assert np.bincount(old.postings_docs).max() == 20 and old.nnz == pruned.nnz
    assert temp_leftovers(tmp_path)  # the interrupted build's temp folder

    run(["index", str(docs), "--out", str(out)], tmp_path)
    for name in ("term_ptr.npy", "postings_docs.npy", "postings_weights.npy", "tokenizer.json", "idf.json",
                 "documents.jsonl", "documents.offsets.npy", "meta.json"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def _train_config(tmp_path: Path, adi_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
output_dir: {tmp_path / name}
seed: 7
student: {{model: splade-tiny, max_seq_length: 32}}
data: {{dataset: {adi_path}, kind: weak, max_pairs: 16, negatives: 2, cache_dir: {tmp_path / 'data'}}}
teachers: {{members: [{{kind: bm25}}], scale: 30, cache_dir: {tmp_path / 'teachers'}}}
loss: {{flops_weight: 1.0e-3, flops_warmup_ratio: 0.5}}
training: {{max_steps: 6, batch_size: 2, save_steps: 3, logging_steps: 1, torch_threads: 2, learning_rate: 1.0e-4}}
evaluation: {{dataset: null}}
""")
    return path


def _weights(model_dir: Path) -> np.ndarray:
    from idfsplade.model import load_sparse_encoder

    model = load_sparse_encoder(str(model_dir))
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters() if p.requires_grad])


def _steps(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def assert_same_training(run_dir: Path, reference: Path) -> None:
    """Same batches in the same order as the uninterrupted run (none repeated, none skipped), and the
    same weights: up to float noise between processes (~3e-6 here), far below what training moved."""
    steps, expected = _steps(run_dir), _steps(reference)
    resumed = [s for s in steps if s["step"] > 3][-3:]  # the kill lost steps after checkpoint-3
    assert [s["step"] for s in steps[:3] + resumed] == [1, 2, 3, 4, 5, 6]
    assert [s["examples"] for s in steps[:3] + resumed] == [s["examples"] for s in expected]
    got, want = _weights(run_dir / "model"), _weights(reference / "model")
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)
    # ... and that tolerance could not hide a wrong resume: the runs differ by a tiny fraction of what
    # training changed (3 steps replayed or lost would differ by about a half of it)
    moved = np.abs(want - _weights_of_untrained(reference)).mean()
    assert np.abs(got - want).mean() < 0.001 * moved


def _weights_of_untrained(reference: Path) -> np.ndarray:
    from idfsplade.model import load_sparse_encoder

    model = load_sparse_encoder("splade-tiny", idf=reference / "model" / "idf.json")
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters() if p.requires_grad])


@pytest.fixture(scope="module")
def reference_training(tmp_path_factory, adi_path):
    tmp = tmp_path_factory.mktemp("train-reference")
    run(["train", str(_train_config(tmp, adi_path, "reference"))], tmp)
    return tmp / "reference"


def test_train_killed_between_checkpoints_resumes_to_the_same_model(tmp_path, adi_path, reference_training):
    config = _train_config(tmp_path, adi_path, "killed")
    run(["train", str(config)], tmp_path, {"pause_at_step": 4, "marker": str(tmp_path / "marker")}, kill_on_marker=True)
    run_dir = tmp_path / "killed"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-3"]
    assert not (run_dir / "model").exists()
    run(["train", str(config)], tmp_path)
    assert_same_training(run_dir, reference_training)


def test_train_killed_while_saving_a_checkpoint_resumes_to_the_same_model(tmp_path, adi_path, reference_training):
    config = _train_config(tmp_path, adi_path, "killed")
    run(["train", str(config)], tmp_path, {"pause_saving_checkpoint": 6, "marker": str(tmp_path / "marker")},
        kill_on_marker=True)
    run_dir = tmp_path / "killed"
    partial = run_dir / "checkpoints" / "checkpoint-6"
    assert partial.is_dir() and not (partial / "trainer_state.json").exists()  # cut short mid-save
    run(["train", str(config)], tmp_path)
    assert_same_training(run_dir, reference_training)
