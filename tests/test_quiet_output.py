"""Quiet, readable output (issue 18): the main job's stages (`idfsplade experiment`: IDF, training
data, teacher vectors, training with checkpoints and the model save, evaluation) and the search
path's model fall-back print no library progress bars or warnings, and the report labels the BM25
teacher for a human. Run as a user runs them: a fresh process, with none of the quieting variables set."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

NOISE = ("Computing widget examples", "Different max_seq_lengths", "Loading weights", "Writing model shards",
         "it/s]", "s/it]", "Warning:", "WARNING", "DEBUG:", "bm25:82-")


def _user_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}


def _idfsplade(*args: str, cwd) -> subprocess.CompletedProcess:
    code = "import sys; from idfsplade.console import main; sys.argv[0] = 'idfsplade'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=_user_env(),
                          cwd=cwd, timeout=900)


def _assert_quiet(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    found = [noise for noise in NOISE if noise in output]
    assert not found, f"{found} in:\n{output[-3000:]}"


@pytest.mark.slow  # a 2-step training run and the encodings of ADI for the report: ~1 min on 2 quiet cores
def test_main_job_stages_print_no_library_noise(tmp_path, adi_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"""
output_dir: {tmp_path / 'run'}
seed: 3
student: {{model: splade-tiny, max_seq_length: 32}}
data: {{dataset: {adi_path}, split: test, negatives: 2, cache_dir: {tmp_path / 'data'}}}
teachers: {{members: [{{kind: bm25}}], scale: 30, cache_dir: {tmp_path / 'teachers'}}}
loss: {{flops_weight: 0.0, student_temperature: 3.0}}
training: {{max_steps: 2, batch_size: 2, save_steps: 1, logging_steps: 1, torch_threads: 2}}
evaluation: {{dataset: null}}
""")
    result = _idfsplade("experiment", str(config), "--no-hybrid", cwd=tmp_path)
    _assert_quiet(result)
    assert "teacher BM25 (stemmed)" in result.stdout
    assert "teacher BM25 (stemmed)" in (tmp_path / "run" / "report" / "results.md").read_text()
    assert (tmp_path / "run" / "model" / "checksums.json").is_file()  # `idfsplade check` can verify it
    check = _idfsplade("check", str(tmp_path / "run"), cwd=tmp_path)
    assert check.returncode == 0 and "ok (training run's model" in check.stdout, check.stderr


def test_search_model_fall_back_prints_no_library_noise(tmp_path):
    """An index without a query side (the older format) loads its model with transformers."""
    from idfsplade.index import InvertedIndex

    matrix = sp.csr_matrix(np.eye(2, 30522, 2000, dtype=np.float32))
    InvertedIndex.from_csr(matrix, ["a", "b"], info={"model": "idfsplade-tiny"}).save(tmp_path / "old")
    result = _idfsplade("search", str(tmp_path / "old"), "-q", "the", cwd=tmp_path)
    _assert_quiet(result)
    assert "holds no query side" in result.stderr  # our own one-line notice stays


def test_quiet_libraries_also_silences_libraries_imported_first(monkeypatch):
    """A process that imported transformers before the CLI (a test run, a notebook) gets no bars either; a
    user's own HF_HUB_DISABLE_PROGRESS_BARS still wins."""
    from transformers.utils import logging as transformers_logging

    from idfsplade.quiet import quiet_libraries

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    transformers_logging.enable_progress_bar()
    assert transformers_logging.is_progress_bar_enabled()
    quiet_libraries()
    assert not transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    quiet_libraries()
    assert transformers_logging.is_progress_bar_enabled()  # the user's choice is left alone
    transformers_logging.disable_progress_bar()
