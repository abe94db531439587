"""``export`` commands: write a model in a serving system's format (``idfsplade export opensearch``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from idfsplade.cli.app import app, console
from idfsplade.model.registry import DEFAULT_DOC_MODEL

export_app = typer.Typer(no_args_is_help=True, help="Export a model for a serving system.")
app.add_typer(export_app, name="export")


@export_app.command()
def opensearch(output: Annotated[Path, typer.Option("--out", "-o", help="Folder for the zips and registration JSONs.")],
               model: Annotated[str, typer.Option("--model", "-m", help="Doc model: alias (idfsplade-tiny, "
                                                                        "splade-tiny), hub id or folder.")
                                ] = DEFAULT_DOC_MODEL,
               idf_path: Annotated[Optional[Path], typer.Option("--idf", help="idf.json for the query side "
                                                                              "(default: the model's own).")] = None,
               name: Annotated[Optional[str], typer.Option(help="Model name in OpenSearch (default: from --model).")
                               ] = None,
               version: str = "1.0.0",
               max_length: Annotated[Optional[int], typer.Option(help="Document truncation (default: the model's).")
                                     ] = None) -> None:
    """Write ML-Commons SPARSE_ENCODING (TorchScript) and SPARSE_TOKENIZE (idf.json) zips + register bodies."""
    from idfsplade.export import export_opensearch
    from idfsplade.model import load_sparse_encoder

    encoder = load_sparse_encoder(model, idf=idf_path, device="cpu")
    for exported in export_opensearch(encoder, output, name or Path(model).name, version, max_length):
        body = exported.registration
        console.print(f"wrote {exported.zip_path} ({body['function_name']}, "
                      f"{body['model_content_size_in_bytes']:,} bytes) and {exported.registration_path}")
