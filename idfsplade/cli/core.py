"""Core commands: ``idf``, ``encode``, ``index``, ``search``, ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from idfsplade.cli.app import app, console, out, progress_factory
from idfsplade.errors import InputError

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Doc model: alias (splade-tiny), hub id or folder.")]
IdfOpt = Annotated[str, typer.Option("--idf", help="'corpus' (compute on this corpus), 'model' (the model's own), "
                                          "or a path to an idf.json.")]


def _prune(top_k: Optional[int], max_ratio: Optional[float], threshold: Optional[float]):
    from idfsplade.vectors import PruneConfig

    return PruneConfig(top_k=top_k, max_ratio=max_ratio, threshold=threshold)


@app.command()
def idf(dataset: Annotated[Path, typer.Argument(help="BEIR folder or a corpus.jsonl.")],
        output: Annotated[Path, typer.Option("--out", "-o", help="Where to write idf.json.")],
        model: ModelOpt = "splade-tiny") -> None:
    """Compute OpenSearch-format idf.json (token → ln(1+(N−df+0.5)/(df+0.5))) over a corpus."""
    from transformers import AutoTokenizer

    from idfsplade.data import document_text, iter_corpus
    from idfsplade.idf import IdfTable
    from idfsplade.model import resolve_model

    corpus = dataset / "corpus.jsonl" if dataset.is_dir() else dataset
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
    with progress_factory() as make:
        table = IdfTable.from_corpus((document_text(d) for d in iter_corpus(corpus)), tokenizer,
                                     progress=make("idf", sum(1 for _ in iter_corpus(corpus))))
    table.save(output)
    console.print(f"wrote {output}: {len(table.to_dict())} tokens over {table.n_docs} documents")


@app.command()
def encode(dataset: Annotated[Path, typer.Argument(help="BEIR folder.")],
           output: Annotated[Path, typer.Option("--out", "-o", help="Output folder (CSR .npy + meta.json).")],
           model: ModelOpt = "splade-tiny",
           idf_path: Annotated[str, typer.Option("--idf", help="'corpus', 'model' or an idf.json path.")] = "corpus",
           batch_size: int = 32, max_length: int = 512,
           top_k: Annotated[Optional[int], typer.Option(help="Keep the k largest weights per doc.")] = None,
           max_ratio: Annotated[Optional[float], typer.Option(help="Keep weights ≥ ratio × max.")] = None,
           threshold: Annotated[Optional[float], typer.Option(help="Keep weights ≥ threshold.")] = None,
           device: Optional[str] = None) -> None:
    """Encode a corpus into sparse document vectors; resumes from the last finished shard."""
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, encode_corpus, load_model

    ds = BeirDataset(dataset)
    spec = SparseModelSpec(model=model, idf=idf_path, batch_size=batch_size, max_length=max_length,
                           prune=_prune(top_k, max_ratio, threshold), device=device)
    with progress_factory() as make:
        encoder, idf_file = load_model(spec, ds, output.parent / f"{output.name}.idf", make)
        matrix, _ = encode_corpus(encoder, ds, output, spec, idf_file, make)
    console.print(f"wrote {output}: {matrix.shape[0]} docs, {matrix.nnz / max(matrix.shape[0], 1):.1f} non-zeros/doc")


@app.command()
def index(encoded: Annotated[Path, typer.Argument(help="Folder written by `idfsplade encode`.")],
          output: Annotated[Path, typer.Option("--out", "-o", help="Index folder.")],
          top_k: Optional[int] = None, max_ratio: Optional[float] = None, threshold: Optional[float] = None) -> None:
    """Build the exact inverted index from encoded documents (optionally pruned), atomically."""
    from idfsplade.index import InvertedIndex
    from idfsplade.pipeline import index_info
    from idfsplade.vectors import load_csr, prune_rows

    matrix, ids, meta = load_csr(encoded)
    matrix = prune_rows(matrix, _prune(top_k, max_ratio, threshold))
    built = InvertedIndex.from_csr(matrix, ids, info=index_info(meta))
    built.save(output)
    console.print(f"wrote {output}: {len(built)} docs, {built.nnz} postings")


@app.command()
def search(index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
           query: Annotated[Optional[str], typer.Option("--query", "-q", help="One query text.")] = None,
           queries: Annotated[Optional[Path], typer.Option(help="queries.jsonl to run in batch.")] = None,
           model: Annotated[Optional[str], typer.Option("--model", "-m", help="Default: the index's model.")] = None,
           idf_path: Annotated[Optional[str], typer.Option("--idf", help="idf.json path or 'model'. "
                                                           "Default: the idf the index was encoded with.")] = None,
           k: int = 10,
           prune_ratio: Annotated[Optional[float], typer.Option(
               help="Query-time pruning: drop tokens whose idf < ratio × the query's max idf.")] = None,
           run: Annotated[Optional[Path], typer.Option(help="Write a TREC run here (with --queries).")] = None
           ) -> None:
    """Search an index with no model call: the query is the idf of its tokens."""
    from idfsplade.data import iter_queries
    from idfsplade.evaluate import write_trec_run
    from idfsplade.pipeline import open_index_retriever

    if (query is None) == (queries is None):
        raise InputError("give exactly one of --query or --queries")
    retriever, _, _ = open_index_retriever(index_dir, model, idf_path, prune_ratio)
    if query is not None:
        hits = retriever.search(query, k)
        for rank, (doc, score) in enumerate(zip(hits.ids, hits.scores), 1):
            typer.echo(f"{rank}\t{doc}\t{score:.4f}")  # plain tabs: rich would expand them
        return
    texts = {q.id: q.text for q in iter_queries(queries)}
    with progress_factory() as make:
        results = retriever.search_many(texts, k=k, progress=make("search", len(texts)))
    if run is not None:
        write_trec_run(run, results, tag="idfsplade")
        console.print(f"wrote {run}: {len(results)} queries")
    else:
        typer.echo(json.dumps(results))


@app.command()
def evaluate(dataset: Annotated[Path, typer.Argument(help="BEIR folder.")] = Path("datasets/scifact"),
             split: str = "test",
             model: Annotated[list[str], typer.Option("--model", "-m", help="Sparse doc model(s); repeatable.")
                              ] = ["splade-tiny"],  # noqa: B006 - typer needs a literal default
             name: Annotated[Optional[list[str]], typer.Option(
                 help="Row label of each --model, in order (default: the model's folder name; a trained "
                      "run's <run>/model folder is labelled <run>).")] = None,
             idf_source: IdfOpt = "corpus",
             bm25: Annotated[bool, typer.Option(help="Also run BM25 (bm25s).")] = True,
             stem: Annotated[bool, typer.Option(help="Add a BM25 row with a Snowball stemmer.")] = False,
             k: int = 100, batch_size: int = 32, max_length: int = 512,
             top_k: Optional[int] = None, max_ratio: Optional[float] = None, threshold: Optional[float] = None,
             work: Annotated[Optional[Path], typer.Option(help="Work folder (cached vectors, index, runs).")] = None,
             device: Optional[str] = None) -> None:
    """Run BM25 and inference-free model(s) on a BEIR split; print nDCG@10, R@100, MRR@10, dims, FLOPS."""
    from idfsplade.atomic import atomic_write_json, atomic_write_text
    from idfsplade.data import BeirDataset
    from idfsplade.evaluate import render_markdown, render_table
    from idfsplade.pipeline import SparseModelSpec, evaluate_dataset

    if name and len(name) != len(model):
        raise InputError(f"{len(name)} --name for {len(model)} --model: give one label per model", field="--name")
    ds = BeirDataset(dataset)
    work = work or Path("runs") / ds.name
    specs = [SparseModelSpec(model=m, idf=idf_source, batch_size=batch_size, max_length=max_length,
                             prune=_prune(top_k, max_ratio, threshold), device=device, name=label)
             for m, label in zip(model, name or [None] * len(model))]
    with progress_factory() as make:
        rows = evaluate_dataset(ds, split, work, specs, bm25=bm25, bm25_stemmers=(None, "english") if stem else (None,),
                                k=k, progress=make)
    out.print(render_table(rows, title=f"{ds.name} ({split})"))
    atomic_write_json(work / "results.json", [r.as_dict() for r in rows])
    atomic_write_text(work / "results.md", render_markdown(rows))
    console.print(f"runs and results in {work}/")
