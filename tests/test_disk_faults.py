"""A full or read-only disk in every writer (issue 18): one `error:` line naming the path and the cause
(ENOSPC, EROFS, EACCES), exit 2, no traceback; no temporary file or folder left behind; the previous
good output untouched. Faults are injected where every atomic writer passes (``os.fsync``, the last
call before the rename) or raised the way libraries raise them; once on a real 1 MiB tmpfs."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from idfsplade.errors import WriteError
from tests.cli_helpers import run_cli

CAUSES = {errno.ENOSPC: "ENOSPC: no space left on device", errno.EROFS: "EROFS: read-only file system",
          errno.EACCES: "EACCES: permission denied"}


def _refuse(code: int):
    def fsync(fd):
        raise OSError(code, os.strerror(code))
    return fsync


def _leftovers(folder: Path) -> list[str]:
    """Temporary names the atomic writers use (``.NAME.*.tmp``, ``.NAME.old-PID``)."""
    return sorted(p.name for p in folder.rglob(".*") if ".tmp" in p.name or ".old-" in p.name)


def _assert_one_line(code: int, out: str, err: str, path: Path, cause: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert str(path) in err and cause in err, err


# --- the atomic writers, one by one ------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(CAUSES))
def test_atomic_file_writers_name_the_path_and_clean_up(tmp_path, monkeypatch, code):
    from idfsplade import atomic

    target = tmp_path / "out" / "results.json"
    atomic.atomic_write_json(target, {"good": 1})
    monkeypatch.setattr(atomic.os, "fsync", _refuse(code))
    for write in (lambda: atomic.atomic_write_json(target, {"bad": 2}),
                  lambda: atomic.atomic_write_text(target, "bad"),
                  lambda: atomic.atomic_save_npy(target, np.zeros(3))):
        with pytest.raises(WriteError) as info:
            write()
        assert str(info.value) == (f"{target}: cannot write ({CAUSES[code]}); nothing was written, the previous "
                                   f"output is unchanged")
    assert json.loads(target.read_text()) == {"good": 1}
    assert _leftovers(tmp_path) == []


def test_atomic_folder_names_the_final_folder_and_keeps_the_old_one(tmp_path, monkeypatch):
    from idfsplade import atomic

    folder = tmp_path / "index"
    with atomic.atomic_dir(folder) as tmp:
        (tmp / "a.txt").write_text("old")
    monkeypatch.setattr(atomic.os, "fsync", _refuse(errno.ENOSPC))
    with pytest.raises(WriteError, match=f"^{folder}: cannot write \\(ENOSPC"):
        with atomic.atomic_dir(folder) as tmp:
            atomic.atomic_write_text(tmp / "a.txt", "new")  # names the folder, not the temp file inside it
    assert (folder / "a.txt").read_text() == "old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("raised", [OSError(errno.ENOSPC, "No space left on device"),
                                    Exception("Error while serializing: I/O error: No space left on device "
                                              "(os error 28)"),  # safetensors' SafetensorError
                                    OSError(errno.EROFS, "Read-only file system")])
def test_library_writes_inside_a_folder_are_reported_too(tmp_path, raised):
    """A library writing into an atomic folder (sentence-transformers, bm25s, numpy) raises its own way."""
    from idfsplade.atomic import atomic_dir

    with pytest.raises(WriteError, match="cannot write \\((ENOSPC|EROFS)"):
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
            raise raised
    assert list(tmp_path.iterdir()) == []


def test_torch_zip_writer_failure_is_read_from_the_filesystem(tmp_path, monkeypatch):
    """torch.save says only "unexpected pos" when the disk fills: the filesystem is asked."""
    from idfsplade import atomic

    class Full:
        f_flag, f_bavail, f_frsize = 0, 0, 4096

    monkeypatch.setattr(atomic.os, "statvfs", lambda path: Full)
    with pytest.raises(WriteError, match="ENOSPC"):
        with atomic.atomic_dir(tmp_path / "ckpt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    Full.f_bavail = 10**9
    with pytest.raises(RuntimeError, match="unexpected pos"):  # a disk with room: not a disk error
        with atomic.atomic_dir(tmp_path / "ckpt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")


def test_reading_an_input_is_not_reported_as_a_write(tmp_path):
    from idfsplade.atomic import atomic_open

    with pytest.raises(PermissionError):
        with atomic_open(tmp_path / "out" / "x.txt", "w"):
            raise PermissionError(errno.EACCES, "Permission denied", "/elsewhere/corpus.jsonl")
    assert not (tmp_path / "out").exists()  # the parent folder it created is removed again


def test_new_parent_folders_are_removed_after_a_refused_write(tmp_path, monkeypatch):
    from idfsplade import atomic

    monkeypatch.setattr(atomic.os, "fsync", _refuse(errno.ENOSPC))
    with pytest.raises(WriteError):
        atomic.atomic_write_json(tmp_path / "a" / "b" / "idf.json", {})
    assert list(tmp_path.iterdir()) == []


def test_an_escaped_disk_error_is_one_line_at_the_top(tmp_path, capsys):
    """A refusal outside the atomic writers (a mkdir, a library opening its own file) is still one line."""
    from idfsplade.errors import run_main

    def main():
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "x"))

    with pytest.raises(SystemExit) as info:
        run_main(main)
    assert info.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'x'}: EROFS: read-only file system\n"


# --- train checkpoints (HF's Trainer writes them itself) ---------------------------------------------


def test_refused_checkpoint_drops_the_partial_one_and_keeps_the_complete(tmp_path):
    pytest.importorskip("accelerate")
    from idfsplade.train.trainer import dropping_partial_checkpoints

    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "checkpoint-2").mkdir(parents=True)
    (checkpoints / "checkpoint-2" / "trainer_state.json").write_text("{}")
    with pytest.raises(WriteError) as info:
        with dropping_partial_checkpoints(checkpoints):
            (checkpoints / "checkpoint-4").mkdir()
            (checkpoints / "checkpoint-4" / "model.safetensors").write_bytes(b"half")
            raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")
    assert str(info.value).startswith(f"{checkpoints}: cannot write (ENOSPC: no space left on device); "
                                      f"the half-written checkpoint is removed; a rerun resumes from checkpoint-2")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2"]
    with pytest.raises(ValueError):  # anything else is not a disk error
        with dropping_partial_checkpoints(checkpoints):
            raise ValueError("a bug")


# --- the commands --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors(adi_path, tmp_path_factory):
    """ADI encoded with splade-tiny (corpus idf) by `idfsplade encode`: the input of `index`."""
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, encode_corpus, load_model

    work = tmp_path_factory.mktemp("disk-faults")
    spec = SparseModelSpec(model="splade-tiny", idf="corpus")
    model, idf_file = load_model(spec, BeirDataset(adi_path), work / "vectors.idf")
    encode_corpus(model, BeirDataset(adi_path), work / "vectors", spec, idf_file)
    return work / "vectors"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_index_command(vectors, tmp_path, monkeypatch, capsys, code):
    from idfsplade import atomic

    out = tmp_path / "index"
    assert run_cli(monkeypatch, capsys, "index", str(vectors), "--out", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    monkeypatch.setattr(atomic.os, "fsync", _refuse(code))
    _assert_one_line(*run_cli(monkeypatch, capsys, "index", str(vectors), "--out", str(out)), out, CAUSES[code])
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert _leftovers(tmp_path) == []


def test_idf_command(adi_path, tmp_path, monkeypatch, capsys):
    from idfsplade import atomic

    out = tmp_path / "idf" / "idf.json"
    monkeypatch.setattr(atomic.os, "fsync", _refuse(errno.ENOSPC))
    _assert_one_line(*run_cli(monkeypatch, capsys, "idf", str(adi_path), "--out", str(out), "--model", "splade-tiny"),
                     out, CAUSES[errno.ENOSPC])
    assert list(tmp_path.iterdir()) == []


def test_encode_command_leaves_no_shard_folder(adi_path, tmp_path, monkeypatch, capsys):
    from idfsplade import atomic

    out = tmp_path / "vectors"
    fsync = atomic.os.fsync

    def refuse_shards(fd):  # the idf cache is written; the first shard is refused
        if ".shards" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", refuse_shards)
    _assert_one_line(*run_cli(monkeypatch, capsys, "encode", str(adi_path), "--out", str(out), "--model",
                              "splade-tiny"), out, CAUSES[errno.ENOSPC])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.idf"]  # the finished idf cache only
    assert _leftovers(tmp_path) == []


def test_export_command(tmp_path, monkeypatch, capsys, adi_idf):
    from idfsplade import atomic

    out = tmp_path / "export"
    adi_idf.save(tmp_path / "idf.json")
    monkeypatch.setattr(atomic.os, "fsync", _refuse(errno.EROFS))
    _assert_one_line(*run_cli(monkeypatch, capsys, "export", "opensearch", "--out", str(out), "--model", "splade-tiny",
                              "--idf", str(tmp_path / "idf.json")), out / "sparse_encoding.zip", CAUSES[errno.EROFS])
    assert _leftovers(tmp_path) == [] and list(out.iterdir()) == []


def test_experiment_report(tmp_path, monkeypatch):
    """`experiment` and `adapt` write their reports through the atomic writers: a refusal keeps the
    previous report whole."""
    from idfsplade import atomic
    from idfsplade.evaluate import ResultRow
    from idfsplade.train.experiment import write_report

    rows = [ResultRow("adi", "bm25", {"nDCG@10": 0.5})]
    write_report(tmp_path / "report", rows, None)
    before = {p.name: p.read_bytes() for p in (tmp_path / "report").iterdir()}
    monkeypatch.setattr(atomic.os, "fsync", _refuse(errno.ENOSPC))
    with pytest.raises(WriteError, match="/report: cannot write \\(ENOSPC"):
        write_report(tmp_path / "report", [ResultRow("adi", "bm25", {"nDCG@10": 0.9})], None)
    assert {p.name: p.read_bytes() for p in (tmp_path / "report").iterdir()} == before
    assert _leftovers(tmp_path) == []


# --- a real full and a real read-only filesystem --------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path):
    """A 600 KiB tmpfs (root only): skipped where mounting is not permitted."""
    mount = tmp_path / f"fs-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + result.stderr.decode(errors="replace").strip()[:100])
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_index_on_a_real_full_then_read_only_disk(vectors, small_fs, monkeypatch, capsys):
    """`index` onto a 600 KiB filesystem (the index with documents and BM25 needs more): one line,
    the disk as it was (the earlier file intact, no temp files, space given back); then read-only."""
    (small_fs / "keep.txt").write_text("earlier output")
    free = shutil.disk_usage(small_fs).free
    out = small_fs / "index"
    _assert_one_line(*run_cli(monkeypatch, capsys, "index", str(vectors), "--out", str(out)), out,
                     CAUSES[errno.ENOSPC])
    assert sorted(p.name for p in small_fs.iterdir()) == ["keep.txt"]
    assert (small_fs / "keep.txt").read_text() == "earlier output"
    assert shutil.disk_usage(small_fs).free == free
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    code, out_text, err = run_cli(monkeypatch, capsys, "index", str(vectors), "--out", str(out))
    _assert_one_line(code, out_text, err, out, CAUSES[errno.EROFS])
    # and in a fresh process, as a user runs it
    result = subprocess.run([sys.executable, "-c", "from idfsplade.console import main; main()", "index", str(vectors), "--out", str(out)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    _assert_one_line(result.returncode, result.stdout, result.stderr, out, CAUSES[errno.EROFS])
