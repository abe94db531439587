"""Run the CLI in-process, as a user would from the shell, for the tests that check its output."""

from __future__ import annotations

import sys

import pytest

from idfsplade.cli import main


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``idfsplade ARGS…`` → ``(exit code, stdout, stderr)``."""
    monkeypatch.setattr(sys, "argv", ["idfsplade", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err
