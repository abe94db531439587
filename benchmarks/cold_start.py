"""Cold start of the query side: `idfsplade search INDEX -q TEXT` as a fresh process, and `idfsplade serve`.

For each dataset, builds (or reuses) a SPLADE-tiny + corpus-idf index folder with ``build_sparse_retriever``
(what ``idfsplade evaluate`` builds: the inverted index, a copy of the query side and a document store),
then runs the search command as a new process ``--repeats`` times and records for each run the wall time,
the child's peak RSS and CPU time (``os.wait4``), and which heavy modules the search path imports.

Baseline, measured in the same run: the torch-loading path the command took before index folders held
their query side (``--model splade-tiny --idf <the index's idf.json>`` forces it: the masked LM is loaded
to read a tokenizer and an idf array). Ratios are new / baseline. Also measures ``idfsplade serve`` on
each index: seconds until ``/health`` answers, and resident memory after some searches.

    python benchmarks/cold_start.py                                 # ADI + SciFact, writes benchmarks/results/cold_start.json
    python benchmarks/cold_start.py --datasets datasets/adi --repeats 3

Encoding SciFact (5,183 documents) takes a few minutes on 2 cores; the encoded vectors are cached under
``--work`` (keyed by model, corpus and settings), so later runs only rebuild the index folder.
The machine is shared: wall times swing with its load (recorded as ``loadavg``); CPU seconds of the
child swing less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HEAVY = ("torch", "transformers", "sentence_transformers", "scipy")
QUERY = "vitamin D deficiency increases risk of multiple sclerosis"
CLI = str(Path(sys.executable).with_name("idfsplade"))  # the console script a user runs

PROBE = """
import sys
from idfsplade.cli import main
sys.argv = ["idfsplade", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
import json
print("PROBE " + json.dumps({m: m in sys.modules for m in %r}), file=sys.stderr)
sys.exit(code)
""" % (HEAVY,)


def build_index(dataset: Path, work: Path) -> Path:
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, build_sparse_retriever

    start = time.perf_counter()
    print(f"building (or reusing) the index of {dataset} in {work} ...", file=sys.stderr)
    build_sparse_retriever(SparseModelSpec(model="splade-tiny", idf="corpus"), BeirDataset(dataset), work)
    print(f"  {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return work / "index"


def run_child(argv: list[str]) -> dict:
    """Run ``argv`` as a fresh process: wall seconds, and from its own rusage (``os.wait4``) its peak RSS
    (MB) and CPU seconds (user + sys)."""
    with tempfile.TemporaryFile() as err_file:
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child: stdout discarded, stderr kept for errors, then exec the command
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            os.dup2(err_file.fileno(), 2)
            os.execve(argv[0], argv, {**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        err_file.seek(0)
        stderr = err_file.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{stderr[-2000:]}")
    return {"wall_s": wall, "rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def probe(argv_tail: list[str]) -> dict:
    """Which heavy modules the command imports (one extra run through the same entry point)."""
    result = subprocess.run([sys.executable, "-c", PROBE, *argv_tail], capture_output=True, text=True, check=True)
    line = next(line for line in result.stderr.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


def summary(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    return {"runs": len(runs), "median_wall_s": round(statistics.median(walls), 3), "min_wall_s": round(min(walls), 3),
            "max_wall_s": round(max(walls), 3), "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
            "max_rss_mb": round(max(r["rss_mb"] for r in runs), 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_memory(index: Path, extra: list[str], queries: list[str], timeout: float = 180) -> dict:
    """Start `idfsplade serve` on loopback, time /health, run the queries, read the RSS, stop it."""
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen([CLI, "serve", str(index), "--port", str(port), *extra],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"serve exited: {server.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    health = json.load(response)
                break
            except OSError:
                if time.perf_counter() - start > timeout:
                    raise SystemExit("serve did not answer /health in time") from None
                time.sleep(0.05)
        ready = time.perf_counter() - start
        for text in queries:
            body = json.dumps({"query": text, "k": 10, "explain": True}).encode()
            request = urllib.request.Request(f"{base}/search", body, {"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                json.load(response)
        status = Path(f"/proc/{server.pid}/status").read_text()
        fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM"))}
        return {"health_s": round(ready, 3), "rss_mb": round(int(fields["VmRSS"]) / 1024, 1),
                "peak_rss_mb": round(int(fields["VmHWM"]) / 1024, 1), "health": health}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", type=Path, default=[Path("datasets/adi"), Path("datasets/scifact")])
    parser.add_argument("--work", type=Path, default=Path("runs/cold-start"))
    parser.add_argument("--query", default=QUERY)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cold_start.json"))
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.build_only:
        for ds in args.datasets:
            build_index(ds, args.work / ds.name)
        return
    # The builds (torch, ~1 GB) run in a child: this process must stay small, since a child forked from
    # it starts with its memory, and the kernel counts that in the child's peak RSS (ru_maxrss).
    build = subprocess.run([sys.executable, __file__, "--build-only", "--work", str(args.work),
                            "--datasets", *map(str, args.datasets)])
    if build.returncode:
        return build.returncode  # the child printed its one-line error
    indexes = {ds.name: args.work / ds.name / "index" for ds in args.datasets}
    results: dict = {"query": args.query, "python": platform.python_version(), "cpus": os.cpu_count(),
                     "loadavg_start": list(os.getloadavg()), "datasets": {}}
    for name, index in indexes.items():
        idf = index / "idf.json"
        argv = ["search", str(index), "-q", args.query, "--k", "5"]
        modules = probe(argv)
        new = [run_child([CLI, *argv]) for _ in range(args.repeats)]
        legacy_argv = argv + ["--model", "splade-tiny", "--idf", str(idf)]
        legacy_modules = probe(legacy_argv)
        old = [run_child([CLI, *legacy_argv]) for _ in range(args.baseline_repeats)]
        row = {**summary(new), "torch_imported": modules["torch"], "modules": modules,
               "baseline_torch_path": {**summary(old), "torch_imported": legacy_modules["torch"]}}
        row["wall_ratio"] = round(row["median_wall_s"] / row["baseline_torch_path"]["median_wall_s"], 3)
        row["rss_ratio"] = round(row["max_rss_mb"] / row["baseline_torch_path"]["max_rss_mb"], 3)
        queries = [args.query, "information retrieval", "protein folding in the cell", "library catalog"]
        row["serve"] = serve_memory(index, [], queries)
        row["serve_baseline_torch_path"] = serve_memory(index, ["--model", "splade-tiny", "--idf", str(idf)], queries)
        for key in ("serve", "serve_baseline_torch_path"):
            row[key].pop("health", None)
        results["datasets"][name] = row
    # Floors: what a fresh interpreter costs before any search work, to read the numbers above against.
    floors = {"python -c pass": [sys.executable, "-c", "pass"],
              "import numpy, tokenizers": [sys.executable, "-c", "import numpy, tokenizers"],
              "import idfsplade.cli (typer, rich)": [sys.executable, "-c", "import idfsplade.cli"]}
    results["floors"] = {label: summary([run_child(argv) for _ in range(args.baseline_repeats)])
                         for label, argv in floors.items()}
    results["loadavg_end"] = list(os.getloadavg())
    main_name = "scifact" if "scifact" in results["datasets"] else next(iter(results["datasets"]))
    head = results["datasets"][main_name]
    results.update({"dataset": main_name, "median_wall_s": head["median_wall_s"], "max_rss_mb": head["max_rss_mb"],
                    "torch_imported": head["torch_imported"], "serve_rss_mb": head["serve"]["peak_rss_mb"],
                    "goals": {"median_wall_s <= 1.0": head["median_wall_s"] <= 1.0,
                              "max_rss_mb <= 150": head["max_rss_mb"] <= 150,
                              "serve_rss_mb <= 200": head["serve"]["peak_rss_mb"] <= 200}})

    print(f"\n`idfsplade search INDEX -q {args.query!r}` as a fresh process "
          f"(load average {results['loadavg_start'][0]:.1f} → {results['loadavg_end'][0]:.1f} on {os.cpu_count()} CPUs)\n")
    print(f"{'dataset':<10} {'path':<34} {'runs':>4} {'median s':>9} {'min s':>7} {'cpu s':>6} {'RSS MB':>7} "
          f"{'torch':>6} {'serve /health s':>16} {'serve RSS MB':>13}")
    for name, row in results["datasets"].items():
        for label, part, srv in (("index copy (new)", row, row["serve"]),
                                 ("torch path (baseline)", row["baseline_torch_path"], row["serve_baseline_torch_path"])):
            print(f"{name:<10} {label:<34} {part['runs']:>4} {part['median_wall_s']:>9.3f} {part['min_wall_s']:>7.3f} "
                  f"{part['median_cpu_s']:>6.2f} {part['max_rss_mb']:>7.1f} {str(part['torch_imported']):>6} "
                  f"{srv['health_s']:>16.2f} {srv['peak_rss_mb']:>13.1f}")
        print(f"{name:<10} {'ratio new / baseline':<34} {'':>4} {row['wall_ratio']:>9.3f} {'':>7} {'':>6} {row['rss_ratio']:>7.3f}")
    for label, floor in results["floors"].items():
        print(f"{'floor':<10} {label:<34} {floor['runs']:>4} {floor['median_wall_s']:>9.3f} {floor['min_wall_s']:>7.3f} "
              f"{floor['median_cpu_s']:>6.2f} {floor['max_rss_mb']:>7.1f}")
    print(f"\ngoals ({main_name}): {results['goals']}")
    from idfsplade.atomic import atomic_write_json  # the benchmarks' one JSON writer (imports no numpy)

    atomic_write_json(args.out, results)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
