"""Service basics, side by side on SQLite and PostgreSQL: start-up time, and per-request overhead.

    .venv/bin/python benchmarks/service.py [--requests N]

Prints, per backend: seconds from process start to a healthy /health (target: <= 2 s), the median and p95
latency of an unauthenticated GET /health, an authenticated GET /v1/auth/whoami (token lookup + group
query), and a password login (argon2 verify), and each one's ratio to /health.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from beamlink.testing.databases import create_postgres_database, drop_postgres_database, postgres_problem


def timed(n: int, call: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def run(backend: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        url = create_postgres_database() if backend == "postgresql" else None
        try:
            service = ServiceProcess(home, database_url=url)
            started = time.monotonic()
            service.start()
            startup = time.monotonic() - started
            try:
                admin = Client(service.url, home=home)
                admin.create_user("bench", "bench-password")
                http = httpx.Client(base_url=service.url)
                token = admin.token
                auth = {"Authorization": f"Bearer {token}"}
                login = {"grant_type": "password", "username": "bench", "password": "bench-password"}
                for _ in range(20):  # warm up connection pools and caches
                    http.get("/health")
                    http.get("/v1/auth/whoami", headers=auth)
                health = timed(n, lambda: http.get("/health"))
                whoami = timed(n, lambda: http.get("/v1/auth/whoami", headers=auth))
                issue = timed(max(10, n // 10), lambda: http.post("/v1/auth/token", json=login))
            finally:
                service.stop()
        finally:
            if url:
                drop_postgres_database(url)
    print(
        f"\n[{backend}] start to healthy: {startup:.2f} s (target <= 2 s: "
        f"{'met' if startup <= 2 else 'MISSED'})"
    )
    print(f"  {'request':<28}{'median ms':>10}{'p95 ms':>10}{'x /health':>11}")
    for name, (median, p95) in (
        ("GET /health", health),
        ("GET /v1/auth/whoami", whoami),
        ("POST /v1/auth/token (argon2)", issue),
    ):
        print(f"  {name:<28}{median:>10.2f}{p95:>10.2f}{median / health[0]:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    run("sqlite", args.requests)
    problem = postgres_problem()
    if problem:
        print(f"\n[postgresql] skipped: {problem}")
    else:
        run("postgresql", args.requests)


if __name__ == "__main__":
    main()
