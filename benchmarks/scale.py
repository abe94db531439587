"""Scale: a corpus of synthetic documents shaped like SciFact's vectors, built and served through the commands.

For each backend (``exact``, ``seismic``, ``milvus``): ``idfsplade index ENCODED --out FOLDER --backend B``
timed (build_s, including loading the model to copy its query side), the folder's size on disk
(disk_mb), then ``idfsplade serve FOLDER`` started in a child process and SciFact's test queries sent one
at a time to ``POST /search`` over loopback (p50_ms / p99_ms, end to end: HTTP, tokenize + idf, search),
and the service's resident memory after them, children included (rss_mb: milvus-lite runs its server in
a child process). recall10 is each backend's top-10 against the exact index's on the same queries.

In-process, on the same queries in the same run, interleaved query by query: the exact index's
``search`` against Seismic's (``SeismicBackend.search``) at the recorded knobs and at a sweep of
``heap_factor`` (a search-time knob: no rebuild), so the acceptance ratio (Seismic p50 ≤ 0.3x exact's at
recall@10 ≥ 0.95) is read from one run.

Documents (``--generator``): ``topical`` (the default, ``corpus_topical`` of
``benchmarks/search_latency.py``) mutates real encoded documents (``--reference``, one or more encoded
folders of one model: each synthetic document keeps ~70% of a real document's terms and takes the rest
from a document sharing one of its terms, weights jittered), so the corpus keeps real topics;
``independent`` (``corpus_like``, the 1M latency run's generator) draws every term independently
with the reference's document frequencies, a worst case for clustering indexes. Which one is closer
to real data is measured in the same run and recorded under ``generator``: the cosine of a document
to its nearest neighbour, for the reference itself and for each generator at the reference's size.
Queries: SciFact's test queries with the query side of the model that encoded the reference and the
synthetic corpus's own idf. No document store (synthetic documents have no text), hence no BM25
side-index.

Usage: ``python benchmarks/scale.py --docs 20000 --reference ENCODED [--reference ENCODED ...]`` (a dry
run), then ``--docs 1000000``; the committed command is in ``scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from search_latency import bm25_idf, corpus_like, corpus_topical, nearest_cosine  # noqa: E402

from idfsplade.atomic import atomic_write_json  # noqa: E402
from idfsplade.errors import InputError  # noqa: E402
from idfsplade.integrity import portable_path  # noqa: E402

K = 10


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


GENERATORS = {"topical": corpus_topical, "independent": corpus_like}


def load_references(folders: list[Path]) -> tuple[object, str, list]:
    """The reference folders stacked into one CSR matrix, their model and keys; they must share the model."""
    import scipy.sparse as sp

    from idfsplade.vectors import load_csr

    matrices, models, keys = [], set(), []
    for folder in folders:
        matrix, _, meta = load_csr(folder, mmap=False)
        matrices.append(matrix)
        models.add(meta.get("provenance", {}).get("model"))
        keys.append(meta.get("key"))
    if None in models or len(models) != 1:
        raise InputError(f"the references must record one model (provenance.model), got {sorted(map(str, models))}",
                         field="--reference")
    if len({m.shape[1] for m in matrices}) != 1:
        raise InputError("the references have different vocabularies", field="--reference")
    return sp.vstack(matrices, format="csr"), models.pop(), keys


def generator_fidelity(reference, seed: int) -> dict:
    """Nearest-neighbour cosine (mean and quartiles) of the reference and of each generator at its size."""
    out = {}
    for name, matrix in [("reference", reference)] + [
            (g, fn(reference, reference.shape[0], seed=seed)) for g, fn in GENERATORS.items()]:
        cosine = nearest_cosine(matrix)
        out[name] = {"nn_cosine_mean": round(float(cosine.mean()), 3),
                     "nn_cosine_quartiles": [round(float(q), 3) for q in np.percentile(cosine, [25, 50, 75])],
                     "nnz_per_doc": round(matrix.nnz / matrix.shape[0], 1)}
    return out


def make_encoded(args: argparse.Namespace, folder: Path) -> tuple[str, list[str], dict]:
    """The synthetic encoded folder (reused when it exists for the same size, generator, seed and
    references), its model, and the generator's record (fidelity measured on the reference)."""
    from idfsplade.vectors import load_csr, save_csr

    reference, model, keys = load_references(args.reference)
    stamp = {"docs": args.docs, "seed": args.seed, "generator": args.generator, "reference_keys": keys}
    record = {"name": args.generator, "reference_docs": reference.shape[0],
              "reference": [portable_path(f, REPO) for f in args.reference],
              "fidelity": generator_fidelity(reference, args.seed)}
    log(f"generator fidelity (nearest-neighbour cosine): {record['fidelity']}")
    if (folder / "meta.json").exists() and json.loads((folder / "meta.json").read_text()).get("scale") == stamp:
        log(f"reusing {folder}")
        return model, load_csr(folder)[1], record
    t0 = time.perf_counter()
    docs = GENERATORS[args.generator](reference, args.docs, seed=args.seed)
    log(f"{docs.shape[0]} synthetic docs ({args.generator}), {docs.nnz / docs.shape[0]:.1f} nnz/doc (reference "
        f"{reference.nnz / reference.shape[0]:.1f}) in {time.perf_counter() - t0:.0f} s")
    from idfsplade.model.inference_free import load_tokenizer

    tokenizer = load_tokenizer(model)
    idf = bm25_idf(docs)
    vocab = tokenizer.convert_ids_to_tokens(list(range(docs.shape[1])))
    folder.parent.mkdir(parents=True, exist_ok=True)
    idf_path = folder.parent / f"{folder.name}.idf.json"
    atomic_write_json(idf_path, {t: round(float(w), 6) for t, w in zip(vocab, idf)}, indent=None)
    ids = [f"d{i}" for i in range(docs.shape[0])]
    save_csr(folder, docs, ids, extra={"provenance": {"model": model}, "idf_file": portable_path(idf_path, folder),
                                       "scale": stamp})
    return model, ids, record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def du_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def rss_mb(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from idfsplade.console import main; sys.argv[0] = 'idfsplade'; main()",
            *args]


def serve_and_query(folder: Path, texts: list[str], timeout_s: float) -> dict:
    """Start ``idfsplade serve FOLDER``, send every query once (after a warm-up), stop it."""
    import httpx

    port = free_port()
    log_file = folder.parent / f"{folder.name}.serve.log"
    with log_file.open("w") as log_out:
        server = subprocess.Popen(cli("serve", str(folder), "--port", str(port)), stdout=log_out, stderr=log_out)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=60) as client:
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"serve exited {server.returncode}: {log_file.read_text()[-2000:]}")
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("serve did not come up")
                time.sleep(0.5)
            for text in texts[:20]:
                client.post(f"{url}/search", json={"query": text, "k": K})
            latencies, ids = [], []
            for text in texts:
                t0 = time.perf_counter()
                answer = client.post(f"{url}/search", json={"query": text, "k": K})
                latencies.append((time.perf_counter() - t0) * 1e3)
                answer.raise_for_status()
                ids.append(answer.json()["ids"])
        return {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
                "rss_mb": rss_mb(server.pid), "ids": ids}
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    scores = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth) if t]
    return float(np.mean(scores)) if scores else float("nan")


def in_process(folders: dict[str, Path], texts: list[str], heap_factors: list[float], query_cuts: list[int],
               repeats: int) -> dict:
    """Exact vs Seismic in one process on the same encoded queries, interleaved: p50 per setting, recall."""
    from search_latency import time_interleaved

    from idfsplade.index.folder import open_index
    from idfsplade.query.artefact import load_from_folder

    exact = open_index(folders["exact"])
    seismic = open_index(folders["seismic"]).backend
    encoder = load_from_folder(folders["exact"]).encoder
    queries = [q for q in (encoder.encode(t) for t in texts) if len(q.ids)]
    truth = [exact.search(q.ids, q.weights, K).ids for q in queries]
    recorded = seismic.heap_factor, seismic.query_cut
    out = {"n_queries": len(queries), "recorded": {"heap_factor": recorded[0], "query_cut": recorded[1]}, "sweep": []}
    settings = sorted({(h, q) for h in heap_factors for q in query_cuts} | {recorded}, reverse=True)
    for heap_factor, query_cut in settings:
        seismic.heap_factor, seismic.query_cut = heap_factor, query_cut
        found = [seismic.search(q.ids, q.weights, K).ids for q in queries]
        lat = time_interleaved({"exact": lambda i: exact.search(queries[i].ids, queries[i].weights, K),
                                "seismic": lambda i: seismic.search(queries[i].ids, queries[i].weights, K)},
                               len(queries), repeats)
        row = {"heap_factor": heap_factor, "query_cut": seismic.query_cut, "recall10": recall(found, truth),
               "exact_p50_ms": float(np.median(lat["exact"])) / 1e3,
               "seismic_p50_ms": float(np.median(lat["seismic"])) / 1e3}
        row["ratio"] = row["seismic_p50_ms"] / row["exact_p50_ms"]
        out["sweep"].append(row)
        log(f"in-process heap_factor={heap_factor} query_cut={query_cut}: recall@10 {row['recall10']:.4f}, seismic p50 "
            f"{row['seismic_p50_ms']:.3f} ms vs exact {row['exact_p50_ms']:.3f} ms ({row['ratio']:.3f}x)")
    seismic.heap_factor, seismic.query_cut = recorded
    good = [r for r in out["sweep"] if r["recall10"] >= 0.95]
    out["best_at_recall_0.95"] = min(good, key=lambda r: r["ratio"]) if good else None
    return out


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _cpu_kind() -> str:
    """The vector units timings depend on, from /proc/cpuinfo's flags: "AVX-512 + AMX", "AVX-512", "AVX2"."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    if "avx512f" in flags:
        return "AVX-512 + AMX" if "amx_bf16" in flags else "AVX-512"
    return "AVX2" if "avx2" in flags else "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--reference", type=Path, action="append",
                        help="an encoded folder of one model, repeatable (default: runs/scifact-docs, from "
                             "`idfsplade encode datasets/scifact --out runs/scifact-docs`)")
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="topical")
    parser.add_argument("--dataset", type=Path, default=REPO / "datasets" / "scifact", help="for the test queries")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "scale")
    parser.add_argument("--backends", default="exact,seismic,milvus")
    parser.add_argument("--seismic-opt", action="append", default=[],
                        help="a Seismic knob for `index --backend-opt` (repeatable)")
    parser.add_argument("--milvus-opt", action="append", default=[])
    parser.add_argument("--heap-factors", default="0.9,0.7,0.5")
    parser.add_argument("--query-cuts", default="32,16,10")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the index folders")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scale.json")
    args = parser.parse_args(argv)
    args.reference = args.reference or [REPO / "runs" / "scifact-docs"]
    from idfsplade.data import BeirDataset

    backends = [b for b in args.backends.split(",") if b]
    if "exact" not in backends:
        raise InputError("--backends must include exact (the recall reference)", field="--backends")
    texts = list(BeirDataset(args.dataset).split_queries("test")[0].values())
    work = args.work / f"{args.generator}-{args.docs}"
    encoded = work / "encoded"
    _, _, generator = make_encoded(args, encoded)
    rows, folders, truth = [], {}, None
    for backend in backends:
        folder = work / f"index-{backend}"
        if folder.exists():
            shutil.rmtree(folder)
        knobs = {"seismic": args.seismic_opt, "milvus": args.milvus_opt}.get(backend, [])
        command = cli("index", str(encoded), "--out", str(folder), "--backend", backend, "--no-documents",
                      *[a for knob in knobs for a in ("--backend-opt", knob)])
        log(f"build {backend}: {' '.join(command[3:])}")
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        build_s = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"index --backend {backend} failed: {done.stderr[-2000:]}")
        log(f"built {backend} in {build_s:.0f} s, {du_mb(folder):.0f} MB")
        served = serve_and_query(folder, texts, timeout_s=1200)
        truth = served["ids"] if backend == "exact" else truth
        rows.append({"backend": backend, "build_s": round(build_s, 1), "disk_mb": round(du_mb(folder), 1),
                     "rss_mb": round(served["rss_mb"], 1), "p50_ms": round(served["p50_ms"], 3),
                     "p99_ms": round(served["p99_ms"], 3), "recall10": round(recall(served["ids"], truth), 4),
                     "knobs": json.loads((folder / "meta.json").read_text()).get("backend", {}).get("options", {})})
        log(f"{backend}: {rows[-1]}")
        folders[backend] = folder
        if backend == "milvus" and not args.keep:
            shutil.rmtree(folder)  # the largest folder; the in-process comparison needs exact and seismic only
    comparison = None
    if "seismic" in folders:
        comparison = in_process(folders, texts, [float(h) for h in args.heap_factors.split(",")],
                                [int(q) for q in args.query_cuts.split(",")], args.repeats)
    import scipy

    from idfsplade.vectors import load_csr

    matrix, _, _ = load_csr(encoded)
    result = {"docs": args.docs, "nnz_per_doc": round(matrix.nnz / matrix.shape[0], 1), "queries": len(texts),
              "k": K, "rows": rows, "in_process": comparison, "generator": generator,
              "machine": {"cpus": os.cpu_count(), "cpu": _cpu_name(), "cpu_kind": _cpu_kind(), "load_average": os.getloadavg(),
                          "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__},
              "command": "python benchmarks/scale.py " + " ".join(
                  portable_path(a, REPO) for a in (argv if argv is not None else sys.argv[1:]))}
    print(f"{'backend':8} {'build_s':>8} {'disk_mb':>9} {'rss_mb':>8} {'p50_ms':>8} {'p99_ms':>8} {'recall10':>8}")
    for r in rows:
        print(f"{r['backend']:8} {r['build_s']:8.1f} {r['disk_mb']:9.1f} {r['rss_mb']:8.1f} {r['p50_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['recall10']:8.4f}")
    atomic_write_json(args.out, result)
    log(f"wrote {args.out}")
    if not args.keep:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
