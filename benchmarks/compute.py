"""Compute, side by side: beamlink (service + endpoint daemon) against Parsl's HighThroughputExecutor used
directly, in one run on this machine.

    .venv/bin/python benchmarks/compute.py [--round-trips N] [--tasks N] [--workers N]

(a) Warm round trip of a no-op function, p50 and p95: through the service and an endpoint with the
    thread engine and with the parsl engine (Executor.submit().result(): one WebSocket, the batch out
    and the result pushed back; and Client.submit + get_result long-poll, two HTTP requests), against
    a Parsl python_app's .result(). Target: p50 <= 5 ms with the thread engine (funcX published ~76 ms
    over a WAN).
(b) Throughput of --tasks no-op tasks through Executor with the parsl engine, against the same number of
    Parsl apps. Target: >= 70 % of Parsl-direct.

Both sides use a LocalProvider with one block of --workers workers. SQLite backend.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path
from typing import Any

from beamlink.sdk import Client, Executor
from beamlink.service.launcher import ServiceProcess


def noop() -> None:
    return None


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def timed(n: int, call: Callable[[], Any], warmup: int = 20) -> tuple[float, float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def cli(home: Path, url: str, *args: str) -> str:
    env = {**os.environ, "BEAMLINK_HOME": str(home), "BEAMLINK_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "beamlink", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"beamlink {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
    return done.stdout


def start_endpoint(home: Path, url: str, name: str, config: str) -> str:
    cli(home, url, "endpoint", "configure", name)
    (home / "endpoints" / name / "config.yaml").write_text(config)
    out = cli(home, url, "endpoint", "start", name)
    return out.split(": ", 1)[1].split(" ", 1)[0]


def parsl_direct(
    n_round: int, n_tasks: int, workers: int, run_dir: Path
) -> tuple[tuple[float, float], float]:
    import parsl
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    config = Config(
        executors=[
            HighThroughputExecutor(
                label="direct",
                max_workers_per_node=workers,
                provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
            )
        ],
        run_dir=str(run_dir),
        strategy="none",
    )
    # Parsl starts interchange.py and process_worker_pool.py by name: put this venv's bin first.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    dfk = parsl.load(config)
    try:
        app = parsl.python_app(noop)
        round_trip = timed(n_round, lambda: app().result())
        started = time.perf_counter()
        futures = [app() for _ in range(n_tasks)]
        wait(futures)
        rate = n_tasks / (time.perf_counter() - started)
    finally:
        dfk.cleanup()
    return round_trip, rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    thread_config = "engine:\n  type: thread\n  max_workers: 4\n"
    parsl_config = (
        "engine:\n  type: parsl\n"
        f"  max_workers_per_node: {args.workers}\n"
        "  provider:\n    type: LocalProvider\n    init_blocks: 1\n    min_blocks: 1\n    max_blocks: 1\n"
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        with ServiceProcess(home) as service:
            client = Client(service.url, home=home)
            thread_ep = start_endpoint(home, service.url, "bench-thread", thread_config)
            parsl_ep = start_endpoint(home, service.url, "bench-parsl", parsl_config)
            try:
                fid = client.register_function(noop)
                for label, endpoint in (("thread", thread_ep), ("parsl", parsl_ep)):
                    with Executor(endpoint, client=client) as ex:
                        ex.submit(noop).result(timeout=120)  # the parsl block may still be starting
                        results[f"executor-{label}"] = timed(
                            args.round_trips, lambda: ex.submit(noop).result()
                        )
                    results[f"client-{label}"] = timed(
                        args.round_trips,
                        lambda ep=endpoint: client.get_result(client.submit(ep, fid), timeout=30),  # type: ignore[misc]
                    )
                with Executor(parsl_ep, client=client) as ex:
                    started = time.perf_counter()
                    futures = [ex.submit(noop) for _ in range(args.tasks)]
                    wait(futures)
                    results["throughput-beamlink"] = args.tasks / (time.perf_counter() - started)
                    failed = sum(1 for f in futures if f.exception() is not None)
                    if failed:
                        print(f"warning: {failed} of {args.tasks} tasks failed")
            finally:
                cli(home, service.url, "endpoint", "stop", "bench-thread")
                cli(home, service.url, "endpoint", "stop", "bench-parsl")
        direct_rt, direct_rate = parsl_direct(
            args.round_trips, args.tasks, args.workers, home / "parsl-direct"
        )

    print(f"\n(a) warm round trip of a no-op, {args.round_trips} calls (ms)")
    print(f"  {'path':<46}{'p50':>8}{'p95':>8}{'x Parsl':>9}")
    rows = [
        ("beamlink Executor, thread engine", results["executor-thread"]),
        ("beamlink Client.submit+get_result, thread", results["client-thread"]),
        ("beamlink Executor, parsl engine", results["executor-parsl"]),
        ("beamlink Client.submit+get_result, parsl", results["client-parsl"]),
        ("Parsl HTEX direct (python_app().result())", direct_rt),
    ]
    for name, (p50, p95) in rows:
        print(f"  {name:<46}{p50:>8.2f}{p95:>8.2f}{p50 / direct_rt[0]:>9.2f}")
    target = results["executor-thread"][0]
    print(f"  target p50 <= 5 ms (thread engine): {'met' if target <= 5 else 'MISSED'} ({target:.2f} ms)")
    ratio = results["throughput-beamlink"] / direct_rate
    print(f"\n(b) {args.tasks} no-op tasks, parsl engine, {args.workers} workers")
    print(f"  beamlink Executor: {results['throughput-beamlink']:8.0f} tasks/s")
    print(f"  Parsl direct:      {direct_rate:8.0f} tasks/s")
    print(f"  ratio: {ratio:.0%} (target >= 70 %: {'met' if ratio >= 0.7 else 'MISSED'})")


if __name__ == "__main__":
    main()
