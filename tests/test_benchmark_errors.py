"""Every ``benchmarks/*.py`` script reports bad input as the CLI does: one ``error: …`` line naming the
path, exit code 2, no traceback (``idfsplade.errors.run_main``), and writes no result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENTRY = 'if __name__ == "__main__":\n    from idfsplade.errors import run_main\n\n    run_main(main)\n'

# script → arguments that point it at a folder that does not exist, and the message expected. Five
# scripts run (most import sentence-transformers first, ~10 s each); the rest are checked to use run_main.
MISSING = "no-such-collection"
CASES = {
    "cold_start.py": (["--datasets", MISSING, "--work", "OUT", "--out", "OUT/r.json"],  # error in its child
                      "dataset folder not found"),
    "hybrid_alternatives.py": ([MISSING, "--scifact", MISSING, "--work", "OUT", "--out", "OUT/r.json"],
                               "dataset folder not found"),
    "load_test.py": (["--dataset", MISSING, "--out", "OUT/r.json"], "dataset folder not found"),
    "pruning.py": (["--docs", MISSING, "--out", "OUT/r.json"], "`idfsplade encode DATASET --out FOLDER` writes one"),
    "scale.py": (["--docs", "10", "--reference", MISSING, "--work", "OUT", "--out", "OUT/r.json"],
                 "`idfsplade encode DATASET --out FOLDER` writes one"),
}


def test_every_benchmark_script_enters_through_run_main():
    scripts = sorted((REPO / "benchmarks").glob("*.py"))
    assert len(scripts) >= 11
    for script in scripts:
        assert script.read_text().endswith(ENTRY), script.name


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_reports_a_missing_input_in_one_line(tmp_path, script):
    args, message = CASES[script]
    out = tmp_path / "out"
    argv = [a.replace("OUT", str(out)) for a in args]
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *argv], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert MISSING in errors[0] and message in errors[0], errors[0]
    assert not (out / "r.json").exists() and not (out / "r.md").exists()
