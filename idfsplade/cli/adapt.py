"""``adapt``: label-free adaptation of an inference-free encoder to one corpus (corpus.jsonl alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from idfsplade.cli.app import app, console, enable_stage_logging, out
from idfsplade.cli.train import SetOpt


@app.command()
def adapt(corpus: Annotated[Path, typer.Argument(help="BEIR folder; only its corpus.jsonl is used for training.")],
          output: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder. Default: runs/adapt/<name>.")
                            ] = None,
          model: Annotated[Optional[str], typer.Option("--model", "-m", help="Starting model (alias, hub id, "
                                                       "folder). Default: the config's (idfsplade-tiny).")] = None,
          max_steps: Annotated[Optional[int], typer.Option(help="Training steps (default: the config's).")] = None,
          set_: SetOpt = None,
          config: Annotated[Optional[Path], typer.Option(help="Run config to start from. Default: the packaged "
                                                         "idfsplade/train/adapt.yaml.")] = None,
          split: Annotated[str, typer.Option(help="Judged split the final report evaluates, if the folder has "
                                                  "it (never read before training ends).")] = "test",
          teachers: Annotated[bool, typer.Option(help="Also report each teacher and their ensemble.")] = True,
          hybrid: Annotated[bool, typer.Option(help="Also report the student fused with stemmed BM25.")] = True
          ) -> None:
    """Adapt an inference-free sparse encoder to CORPUS with no queries or qrels: pseudo-queries from the
    documents, BM25 negatives, teacher-ensemble targets; then index and report (rerun to resume)."""
    from idfsplade.evaluate import render_table
    from idfsplade.train.adapt import adapt_config, run_adapt
    from idfsplade.train.config import parse_overrides

    cfg = adapt_config(corpus, output, model, max_steps, parse_overrides(set_), config)
    enable_stage_logging()
    rows = run_adapt(cfg, split=split, teachers=teachers, hybrid=hybrid)
    out.print(render_table(rows, title=f"{corpus.name} (adapted; {split})"))
    console.print(f"model in {cfg.output_dir}/model/, report in {cfg.output_dir}/report/")
