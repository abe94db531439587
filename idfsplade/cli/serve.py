"""``idfsplade serve``: the search service over an index folder, run by uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from idfsplade.cli.app import app, console
from idfsplade.search import fusion  # the registered fusion methods: the --hybrid-method help


@app.command()
def serve(index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
          model: Annotated[str | None, typer.Option("--model", "-m", help="Model to query with; default: "
                                                       "the one recorded in the index.")] = None,
          idf_path: Annotated[str | None, typer.Option("--idf", help="idf.json path or 'model'; "
                                                          "default: the one recorded in the index.")] = None,
          host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the service.")] = "127.0.0.1",
          port: int = 8000,
          workers: Annotated[int, typer.Option(min=1, help="Processes; each maps the same index files.")] = 1,
          max_query_chars: int = 4096, max_k: int = 1000, max_batch: int = 256,
          max_body_bytes: Annotated[int, typer.Option(help="Larger bodies get 413 before parsing.")] = 256 * 1024,
          hybrid: Annotated[bool, typer.Option(help="Fuse every search with the index's BM25 side-index "
                                                "(OpenSearch's hybrid query); still no model call.")] = False,
          hybrid_weight: Annotated[float | None, typer.Option(help=fusion.weight_help())] = None,
          hybrid_method: Annotated[str | None, typer.Option(help=fusion.method_help())] = None,
          check: Annotated[bool, typer.Option("--check", help="Verify every file's sha256 before serving "
                                              "(`idfsplade check`); a damaged index is refused.")] = False
          ) -> None:
    """Serve POST /search, POST /search/batch and GET /health (OpenAPI docs at /docs)."""
    import uvicorn

    from idfsplade.serve import ServeConfig, ServeLimits, load_app
    from idfsplade.serve.loader import ENV_VAR

    config = ServeConfig(index_dir, model, idf_path,
                         ServeLimits(max_query_chars=max_query_chars, max_k=max_k, max_batch=max_batch,
                                     max_body_bytes=max_body_bytes),
                         hybrid=hybrid, hybrid_weight=hybrid_weight, hybrid_method=hybrid_method)
    if check:
        from idfsplade.check import check_folder

        console.print(check_folder(index_dir).line(index_dir), highlight=False, soft_wrap=True)
    if workers == 1:
        # Load here, so a wrong folder, model or idf is a one-line error before anything listens.
        uvicorn.run(load_app(config), host=host, port=port)
        return
    # Worker processes cannot be handed an app object: each one loads it through the factory.
    os.environ[ENV_VAR] = config.to_env()
    console.print(f"starting {workers} workers, each loading {index_dir}")
    uvicorn.run("idfsplade.serve.loader:app_from_env", factory=True, host=host, port=port, workers=workers)
