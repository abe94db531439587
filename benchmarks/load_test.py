"""Load test of ``idfsplade serve`` on loopback: latency percentiles, throughput, errors, and the limits.

Starts the service in a subprocess on 127.0.0.1 (never another interface), waits for ``/health``,
sends a bounded number of ``POST /search`` requests at a fixed concurrency with an async httpx client,
then sends the bad requests (empty query, k=0, k=10^6, non-JSON, over-long query, oversized batch,
a 1 MB body) and checks each gets its 4xx while ``/health`` keeps answering. Stops the server at the end.
Prints a table and writes the same numbers as JSON.

    python benchmarks/load_test.py                          # builds (or reuses) an ADI index
    python benchmarks/load_test.py --dataset datasets/scifact --requests 2000 --concurrency 16
    python benchmarks/load_test.py --index runs/scifact/idfsplade-tiny-corpus/index --dataset datasets/scifact

Client and server share the machine, so on few cores the client's own CPU use lowers the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from itertools import cycle, islice
from pathlib import Path

import httpx
import numpy as np

from idfsplade.atomic import atomic_write_json
from idfsplade.serve import ServeConfig, ServeLimits
from idfsplade.serve.loader import ENV_VAR

HOST = "127.0.0.1"  # loopback only: the load never leaves this machine


@dataclass
class LoadResult:
    requests: int
    completed: int
    concurrency: int
    workers: int
    ok: int
    errors: int
    timed_out: bool
    wall_s: float
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    server_took_p50_ms: float
    server_cpu_ms_per_request: float | None


@dataclass
class LimitCheck:
    case: str
    expected: int
    got: int | None
    health_after: int | None

    @property
    def passed(self) -> bool:
        return self.got == self.expected and self.health_after == 200


def build_index(dataset: Path, work: Path) -> Path:
    """SPLADE-tiny + corpus idf index of ``dataset`` under ``work`` (reused when already there)."""
    from idfsplade.data import BeirDataset
    from idfsplade.pipeline import SparseModelSpec, build_sparse_retriever

    print(f"building (or reusing) the index of {dataset} in {work} ...", file=sys.stderr)
    build_sparse_retriever(SparseModelSpec(model="splade-tiny", idf="corpus"), BeirDataset(dataset), work)
    return work / "index"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(config: ServeConfig, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, ENV_VAR: config.to_env(), "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "uvicorn", "idfsplade.serve.loader:app_from_env", "--factory",
               "--host", HOST, "--port", str(port), "--workers", str(workers),
               "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM (graceful: uvicorn stops its workers), then SIGKILL to the server's own group if it hangs."""
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def server_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the server and its worker processes (Linux ``/proc``).

    On a shared machine wall-clock latency mostly measures the neighbours; CPU time per request
    measures the service itself, and 1000 / it is the request rate one core can sustain.
    """
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ticks = 0
        for process in [str(pid), *children]:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_healthy(base: str, server: subprocess.Popen, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with code {server.returncode} before answering /health")
        try:
            response = httpx.get(f"{base}/health", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server did not answer /health within {timeout_s:.0f} s")


async def run_load(base: str, server_pid: int, texts: list[str], k: int, concurrency: int, workers: int,
                   time_limit_s: float) -> LoadResult:
    latencies: list[float] = []
    took: list[float] = []
    errors = 0
    pending = iter(texts)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for text in pending:  # shared iterator: each request is sent exactly once
            start = time.perf_counter()
            try:
                response = await client.post("/search", json={"query": text, "k": k})
            except httpx.HTTPError:
                errors += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)
            if response.status_code == 200:
                took.append(response.json()["took_ms"])
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        cpu_before = server_cpu_seconds(server_pid)
        start = time.perf_counter()
        tasks = [asyncio.ensure_future(worker(client)) for _ in range(concurrency)]
        _, not_done = await asyncio.wait(tasks, timeout=time_limit_s)
        for task in not_done:
            task.cancel()
        await asyncio.gather(*not_done, return_exceptions=True)
        wall = time.perf_counter() - start
        cpu_after = server_cpu_seconds(server_pid)
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    completed = len(took) + errors
    return LoadResult(requests=len(texts), completed=completed, concurrency=concurrency, workers=workers,
                      ok=len(took), errors=errors, timed_out=bool(not_done), wall_s=round(wall, 3),
                      throughput_rps=round(completed / wall, 1),
                      p50_ms=round(float(np.percentile(lat, 50)), 2), p90_ms=round(float(np.percentile(lat, 90)), 2),
                      p99_ms=round(float(np.percentile(lat, 99)), 2), max_ms=round(float(lat.max()), 2),
                      server_took_p50_ms=round(float(np.median(took)) if took else 0.0, 3),
                      server_cpu_ms_per_request=None if cpu_before is None or cpu_after is None or not completed
                      else round((cpu_after - cpu_before) * 1000 / completed, 3))


def check_limits(base: str, limits: ServeLimits) -> list[LimitCheck]:
    """Each bad request must get its 4xx, and the service must answer /health right after."""
    json_header = {"content-type": "application/json"}
    cases = [
        ("empty query", 422, {"json": {"query": ""}}),
        ("whitespace query", 422, {"json": {"query": "  \t "}}),
        ("k=0", 422, {"json": {"query": "retrieval", "k": 0}}),
        ("k=10^6", 422, {"json": {"query": "retrieval", "k": 10**6}}),
        ("non-JSON body", 422, {"content": b"query=retrieval", "headers": json_header}),
        (f"query of {limits.max_query_chars + 1} chars", 422,
         {"json": {"query": "x" * (limits.max_query_chars + 1)}}),
        (f"batch of {limits.max_batch + 1}", 422, {"json": {"queries": ["retrieval"] * (limits.max_batch + 1)},
                                                   "path": "/search/batch"}),
        ("1 MB query (body)", 413, {"json": {"query": "x" * 1_000_000}}),
    ]
    checks = []
    for case, expected, request in cases:
        path = request.pop("path", "/search")
        with httpx.Client(base_url=base, timeout=30) as client:
            try:
                got: int | None = client.post(path, **request).status_code
            except httpx.HTTPError:
                got = None
        try:
            health: int | None = httpx.get(f"{base}/health", timeout=10).status_code
        except httpx.HTTPError:
            health = None
        checks.append(LimitCheck(case, expected, got, health))
    return checks


def render(result: LoadResult, checks: list[LimitCheck], health: dict, load_before: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)  # a log-friendly width: the table must not wrap when piped
    load = Table(title=f"POST /search on 127.0.0.1 — {health['documents']} docs, model {Path(health['model']).name}, "
                       f"load average before: {load_before:.1f} on {os.cpu_count()} CPUs")
    for column in ("requests", "concurrency", "workers", "ok", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms",
                   "max ms", "search p50 ms", "server CPU ms/req"):
        load.add_column(column, justify="right")
    load.add_row(f"{result.completed}/{result.requests}" + (" (time limit)" if result.timed_out else ""),
                 str(result.concurrency), str(result.workers), str(result.ok), str(result.errors),
                 f"{result.throughput_rps:.0f}", f"{result.p50_ms:.2f}", f"{result.p90_ms:.2f}",
                 f"{result.p99_ms:.2f}", f"{result.max_ms:.2f}", f"{result.server_took_p50_ms:.3f}",
                 "n/a" if result.server_cpu_ms_per_request is None else f"{result.server_cpu_ms_per_request:.2f}")
    console.print(load)
    bad = Table(title="Bad requests")
    for column in ("case", "expected", "got", "/health after", "ok"):
        bad.add_column(column)
    for c in checks:
        bad.add_row(c.case, str(c.expected), str(c.got), str(c.health_after), "yes" if c.passed else "NO")
    console.print(bad)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, help="Index folder; default: build one from --dataset.")
    parser.add_argument("--dataset", type=Path, default=Path("datasets/adi"), help="BEIR folder: queries "
                        "(and the index when --index is not given).")
    parser.add_argument("--model", help="Override the model recorded in the index.")
    parser.add_argument("--idf", help="Override the idf recorded in the index.")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--time-limit", type=float, default=120, help="Seconds for the load phase.")
    parser.add_argument("--startup-timeout", type=float, default=180)
    parser.add_argument("--out", type=Path, default=Path("runs/load-test/load_test.json"))
    args = parser.parse_args()

    from idfsplade.data import BeirDataset

    dataset = BeirDataset(args.dataset)
    index = args.index or build_index(args.dataset, Path("runs/load-test") / dataset.name)
    config = ServeConfig(index, args.model, args.idf)
    texts = list(islice(cycle(dataset.queries().values()), args.requests))
    port = free_port()
    base = f"http://{HOST}:{port}"
    load_before = os.getloadavg()[0]  # other processes' CPU use: context for the numbers
    server = start_server(config, port, args.workers)
    try:
        health = wait_healthy(base, server, args.startup_timeout)
        warm_up = texts[:50]
        asyncio.run(run_load(base, server.pid, warm_up, args.k, args.concurrency, args.workers, args.time_limit))
        result = asyncio.run(run_load(base, server.pid, texts, args.k, args.concurrency, args.workers,
                                      args.time_limit))
        checks = check_limits(base, config.limits)
    finally:
        stop_server(server)
    render(result, checks, health, load_before)
    report = {"load": asdict(result), "limit_checks": [{**asdict(c), "passed": c.passed} for c in checks],
              "health": health, "index": str(index), "dataset": str(args.dataset), "k": args.k,
              "machine": {"cpus": os.cpu_count(), "load_average_before": load_before, "python": platform.python_version(), "platform": platform.platform()}}
    atomic_write_json(args.out, report, indent=2)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if result.errors == 0 and not result.timed_out and all(c.passed for c in checks) else 1


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
