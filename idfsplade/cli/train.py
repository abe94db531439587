"""Training commands: ``train`` (one YAML config → a trained model) and ``experiment`` (train +
evaluate beside teachers and baselines + report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from idfsplade.cli.app import app, console, enable_stage_logging, out

ConfigArg = Annotated[Path, typer.Argument(help="YAML run config (see configs/).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: --set loss.flops_weight=0")]


@app.command()
def train(config: ConfigArg, set_: SetOpt = None) -> None:
    """Train an inference-free sparse encoder (rerun the same command to resume after a kill)."""
    from idfsplade.train import load_config
    from idfsplade.train import train as run_training  # the command is named train too
    from idfsplade.train.config import parse_overrides

    enable_stage_logging()
    model_dir = run_training(load_config(config, parse_overrides(set_)))
    console.print(f"model in {model_dir}/ (load with idfsplade.model.load_sparse_encoder)")


@app.command()
def experiment(config: ConfigArg, set_: SetOpt = None, split: str = "test",
               teachers: Annotated[bool, typer.Option(help="Also evaluate each teacher and their ensemble.")] = True,
               hybrid: Annotated[bool, typer.Option(help="Also report the student fused with stemmed BM25 "
                                                    "(what `search --hybrid` answers).")] = True
               ) -> None:
    """Train, then evaluate the student beside BM25, the untrained model and the teachers; write a report."""
    from idfsplade.evaluate import render_table
    from idfsplade.train import load_config
    from idfsplade.train.config import parse_overrides
    from idfsplade.train.experiment import run_experiment

    cfg = load_config(config, parse_overrides(set_))
    enable_stage_logging()
    rows = run_experiment(cfg, split=split, teachers=teachers, hybrid=hybrid)
    out.print(render_table(rows, title=f"{Path(cfg.data.dataset).name} ({split})"))
    console.print(f"report in {cfg.output_dir}/report/ (results.md, results.json, timings.json, ndcg_vs_flops.png)")
