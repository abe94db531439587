"""Core commands: ``idf``, ``encode``, ``index``, ``search``, ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from idfsplade.cli.app import app, console, out, progress_factory
from idfsplade.errors import InputError
from idfsplade.model.registry import DEFAULT_DOC_MODEL
from idfsplade.search import fusion  # the registered fusion methods: the --hybrid-method help

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Doc model: alias (idfsplade-tiny, splade-tiny), hub "
                                                            "id, model folder or a training run's folder.")]
IdfOpt = Annotated[str, typer.Option("--idf", help="'corpus' (compute on this corpus), 'model' (the model's own), "
                                          "or a path to an idf.json.")]


def _prune(top_k: Optional[int], max_ratio: Optional[float], threshold: Optional[float]):
    from idfsplade.vectors import PruneConfig

    return PruneConfig(top_k=top_k, max_ratio=max_ratio, threshold=threshold)


@app.command()
def idf(dataset: Annotated[Path, typer.Argument(help="BEIR folder or a corpus.jsonl.")],
        output: Annotated[Path, typer.Option("--out", "-o", help="Where to write idf.json.")],
        model: ModelOpt = DEFAULT_DOC_MODEL) -> None:
    """Compute OpenSearch-format idf.json (token → ln(1+(N−df+0.5)/(df+0.5))) over a corpus."""
    from idfsplade.data import document_text, iter_corpus
    from idfsplade.idf import IdfTable
    from idfsplade.model.inference_free import load_tokenizer

    corpus = dataset / "corpus.jsonl" if dataset.is_dir() else dataset
    tokenizer = load_tokenizer(model)  # alias, hub id, masked-LM folder or a trained run's <run>/model
    with progress_factory() as make:
        table = IdfTable.from_corpus((document_text(d) for d in iter_corpus(corpus)), tokenizer,
                                     progress=make("idf", sum(1 for _ in iter_corpus(corpus))))
    table.save(output)
    console.print(f"wrote {output}: {len(table.to_dict())} tokens over {table.n_docs} documents")


@app.command()
def encode(dataset: Annotated[Path, typer.Argument(help="BEIR folder.")],
           output: Annotated[Path, typer.Option("--out", "-o", help="Output folder (CSR .npy + meta.json).")],
           model: ModelOpt = DEFAULT_DOC_MODEL,
           idf_path: Annotated[str, typer.Option("--idf", help="'corpus', 'model' or an idf.json path.")] = "corpus",
           batch_size: int = 32, max_length: int = 512,
           top_k: Annotated[Optional[int], typer.Option(help="Keep the k largest weights per doc.")] = None,
           max_ratio: Annotated[Optional[float], typer.Option(help="Keep weights ≥ ratio × max.")] = None,
           threshold: Annotated[Optional[float], typer.Option(help="Keep weights ≥ threshold.")] = None,
           device: Optional[str] = None,
           shard: Annotated[Optional[str], typer.Option(help="I/N: encode only shard I of N (contiguous rows); "
                                                        "`idfsplade index` merges the N folders.")] = None,
           chunk: Annotated[int, typer.Option(min=1, help="Documents per resumable piece (shard boundaries "
                                              "fall on pieces, so shards merge bit-identically).")] = 1024) -> None:
    """Encode a corpus into sparse document vectors; resumes from the last finished piece."""
    from idfsplade.vectors.shards import parse_shard

    split = parse_shard(shard) if shard is not None else None
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, encode_corpus, load_model

    ds = BeirDataset(dataset)
    spec = SparseModelSpec(model=model, idf=idf_path, batch_size=batch_size, max_length=max_length,
                           prune=_prune(top_k, max_ratio, threshold), device=device)
    with progress_factory() as make:
        encoder, idf_file = load_model(spec, ds, output.parent / f"{output.name}.idf", make)
        matrix, _ = encode_corpus(encoder, ds, output, spec, idf_file, make, shard=split, chunk=chunk)
    console.print(f"wrote {output}{f' (shard {shard})' if shard else ''}: {matrix.shape[0]} docs, {matrix.nnz / max(matrix.shape[0], 1):.1f} non-zeros/doc")


@app.command()
def index(encoded: Annotated[list[Path], typer.Argument(help="Folder(s) written by `idfsplade encode`: one, or "
                                                        "every shard of `encode --shard I/N`.")],
          output: Annotated[Path, typer.Option("--out", "-o", help="Index folder.")],
          top_k: Optional[int] = None, max_ratio: Optional[float] = None, threshold: Optional[float] = None,
          model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model whose query side to copy "
                                                       "into the index. Default: the one the vectors record.")] = None,
          idf_path: Annotated[Optional[str], typer.Option("--idf", help="idf.json path or 'model'. Default: the "
                                                          "idf the vectors were encoded with.")] = None,
          corpus: Annotated[Optional[Path], typer.Option(help="corpus.jsonl to copy the documents from. Default: "
                                                         "the one the vectors were encoded from.")] = None,
          documents: Annotated[bool, typer.Option(help="Store the documents (title, text) for search results.")
                               ] = True,
          bm25: Annotated[bool, typer.Option(help="With the documents, a BM25 side-index (stemmed) for "
                                             "`search --hybrid` / `serve --hybrid`.")] = True,
          backend: Annotated[str, typer.Option(help="exact (embedded, default), seismic (approximate), milvus "
                                               "(milvus-lite in the folder, or a server with --milvus-uri) or "
                                               "lucene; see docs/backends.md.")] = "exact",
          backend_opt: Annotated[Optional[list[str]], typer.Option(
              "--backend-opt", help="A backend knob as key=value (repeatable), e.g. heap_factor=0.7.")] = None,
          milvus_uri: Annotated[Optional[str], typer.Option(help="A Milvus server or cluster, e.g. "
                                                            "http://host:19530 (default: milvus-lite in the folder).")
                                ] = None,
          milvus_token: Annotated[Optional[str], typer.Option(help="user:password or API key (not stored; "
                                                              "default: $IDFSPLADE_MILVUS_TOKEN).")] = None,
          milvus_db: Annotated[Optional[str], typer.Option(help="The server's database.")] = None) -> None:
    """Build an index from encoded documents (optionally pruned), atomically, with a copy of the query
    side (tokenizer.json + idf.json) and the documents, so that search needs no model. The folder
    records its backend and knobs; `search` and `serve` open whatever it records."""
    from idfsplade.index import InvertedIndex
    from idfsplade.index.folder import parse_knobs
    from idfsplade.search.index_folder import (
        index_info,
        query_encoder_from_model,
        resolve_source,
        write_backend_index,
        write_index,
    )
    from idfsplade.vectors import prune_rows
    from idfsplade.vectors.shards import load_encoded

    options = parse_knobs(backend, backend_opt or [])
    milvus = {"uri": milvus_uri, "token": milvus_token, "db_name": milvus_db}
    if backend != "milvus" and any(v is not None for v in milvus.values()):
        raise InputError("--milvus-uri, --milvus-token and --milvus-db need --backend milvus", field="--backend")
    options.update({k: v for k, v in milvus.items() if v is not None})
    matrix, ids, meta = load_encoded(encoded)
    matrix = prune_rows(matrix, _prune(top_k, max_ratio, threshold))
    info = index_info(meta, encoded[0])
    vocab_size = matrix.shape[1]
    query = None
    if model or info.get("model"):
        query = query_encoder_from_model(*resolve_source(encoded[0], info, model, idf_path))
        if query.vocab_size != vocab_size:
            raise InputError(f"the vectors have a {vocab_size}-term vocabulary but the model has "
                             f"{query.vocab_size}; pass the --model they were encoded with", path=encoded[0])
    else:
        console.print("note: the vectors record no model, so the index holds no query side: search it with --model")
    if documents and corpus is None and info.get("corpus"):
        corpus = Path(info["corpus"])
        if not corpus.is_file():
            console.print(f"note: {corpus} (the corpus the vectors were encoded from) is not here: the index "
                          f"holds no documents; pass --corpus")
            corpus = None
    if backend == "exact":
        built = InvertedIndex.from_csr(matrix, ids, info=info)
        write_index(built, output, query, corpus if documents else None, bm25=bm25)
    else:
        write_backend_index(backend, options, matrix, ids, info, output, query, corpus if documents else None,
                            bm25=bm25)
    stored = (" + query side" * (query is not None) + " + documents" * (documents and corpus is not None)
              + " + BM25" * (bm25 and documents and corpus is not None))
    console.print(f"wrote {output} ({backend}): {len(ids)} docs, {matrix.nnz} postings{stored}")


@app.command()
def search(index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
           query: Annotated[Optional[str], typer.Option("--query", "-q", help="One query text.")] = None,
           queries: Annotated[Optional[Path], typer.Option(help="queries.jsonl to run in batch.")] = None,
           model: Annotated[Optional[str], typer.Option("--model", "-m", help="Default: the query side the index "
                                                        "holds (or, for an older index, its recorded model).")] = None,
           idf_path: Annotated[Optional[str], typer.Option("--idf", help="idf.json path or 'model'. "
                                                           "Default: the idf the index was encoded with.")] = None,
           k: int = 10,
           prune_ratio: Annotated[Optional[float], typer.Option(
               help="Query-time pruning: drop tokens whose idf < ratio × the query's max idf.")] = None,
           run: Annotated[Optional[Path], typer.Option(help="Write a TREC run here (with --queries).")] = None,
           explain: Annotated[bool, typer.Option(help="Under each hit, its matched tokens: idf × document "
                                                 "weight = contribution; they sum to the score.")] = False,
           hybrid: Annotated[bool, typer.Option(help="Fuse with the index's BM25 side-index (stemmed), per query, "
                                                "as OpenSearch's hybrid query does; still no model call.")] = False,
           hybrid_weight: Annotated[Optional[float], typer.Option(help=fusion.weight_help())] = None,
           hybrid_method: Annotated[Optional[str], typer.Option(help=fusion.method_help())] = None
           ) -> None:
    """Search an index with no model call: the query is the idf of its tokens.

    Prints rank, id, score and, when the index stores documents, title and snippet (tab-separated).
    """
    from idfsplade.search.hybrid import check_hybrid_options
    from idfsplade.search.index_folder import open_hybrid, open_index_retriever

    if (query is None) == (queries is None):
        raise InputError("give exactly one of --query or --queries")
    if query is not None:
        from idfsplade.search.printing import print_hits  # the same function the console script's quick path runs

        print_hits(index_dir, query, model, idf_path, k, prune_ratio, explain, hybrid, hybrid_weight, hybrid_method)
        return
    if k < 1:
        raise InputError(f"--k must be at least 1, got {k}", field="--k")
    settings = check_hybrid_options(hybrid, hybrid_weight, hybrid_method)
    retriever, _ = open_index_retriever(index_dir, model, idf_path, prune_ratio)
    if settings is not None:
        retriever = open_hybrid(index_dir, retriever, *settings)
    from idfsplade.data import iter_queries

    texts = {q.id: q.text for q in iter_queries(queries)}
    with progress_factory() as make:
        results = retriever.search_many(texts, k=k, progress=make("search", len(texts)))
    if run is not None:
        from idfsplade.evaluate.trec import write_trec_run

        write_trec_run(run, results, tag="idfsplade")
        console.print(f"wrote {run}: {len(results)} queries")
    else:
        typer.echo(json.dumps(results))


@app.command()
def evaluate(dataset: Annotated[Path, typer.Argument(help="BEIR folder.")] = Path("datasets/scifact"),
             split: str = "test",
             model: Annotated[list[str], typer.Option("--model", "-m", help="Sparse doc model(s); repeatable.")
                              ] = [DEFAULT_DOC_MODEL],  # noqa: B006 - typer needs a list default
             name: Annotated[Optional[list[str]], typer.Option(
                 help="Row label of each --model, in order (default: the model's folder name; a trained "
                      "run's <run>/model folder is labelled <run>).")] = None,
             idf_source: IdfOpt = "corpus",
             bm25: Annotated[bool, typer.Option(help="Also run BM25 (bm25s).")] = True,
             stem: Annotated[bool, typer.Option(help="Add a BM25 row with a Snowball stemmer.")] = False,
             hybrid: Annotated[bool, typer.Option(
                 help="Add a row per model fusing its run with stemmed BM25 (OpenSearch hybrid query).")] = False,
             hybrid_weight: Annotated[Optional[float], typer.Option(help=fusion.weight_help())] = None,
             hybrid_method: Annotated[Optional[str], typer.Option(help=fusion.method_help())] = None,
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
    from idfsplade.search.hybrid import check_hybrid_options

    settings = check_hybrid_options(hybrid, hybrid_weight, hybrid_method)
    hybrid_spec = None
    if settings is not None:
        from idfsplade.search.hybrid import HybridSpec

        hybrid_spec = HybridSpec(weight=settings[0], method=settings[1])
    ds = BeirDataset(dataset)
    work = work or Path("runs") / ds.name
    specs = [SparseModelSpec(model=m, idf=idf_source, batch_size=batch_size, max_length=max_length,
                             prune=_prune(top_k, max_ratio, threshold), device=device, name=label)
             for m, label in zip(model, name or [None] * len(model))]
    with progress_factory() as make:
        rows = evaluate_dataset(ds, split, work, specs, bm25=bm25, bm25_stemmers=(None, "english") if stem else (None,),
                                k=k, progress=make, hybrid=hybrid_spec)
    out.print(render_table(rows, title=f"{ds.name} ({split})"))
    atomic_write_json(work / "results.json", [r.as_dict() for r in rows])
    atomic_write_text(work / "results.md", render_markdown(rows))
    console.print(f"runs and results in {work}/")
