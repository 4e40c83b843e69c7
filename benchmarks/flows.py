"""Flows, measured: the run engine's own overhead, beside what Globus Flows publishes.

    .venv/bin/python benchmarks/flows.py [--passes 200] [--actions 50] [--runs 1000] [--no-postgres]

(a) overhead per state on a --passes-state Pass chain (run start to completion, from the run record);
(b) overhead per action on an --actions-step chain of no-op compute actions (thread endpoint): the run's
    duration minus the tasks' own running time, per action;
(c) time from the run request to its first action started (the task shows `running`);
(d) --runs concurrent runs of a 3-step flow (Pass → hello_world action → Pass) on SQLite and PostgreSQL:
    all must end SUCCEEDED, with exactly one FlowSucceeded each, none lost or duplicated.

Targets: <= 5 ms per Pass state; <= 15 ms per compute action. Globus Flows: 3-8 s per action, 10-25 ms
between states (shared/reference/globus-flows-gladier.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from beamlink.testing.databases import create_postgres_database, drop_postgres_database, postgres_problem

THREAD_CONFIG = "engine:\n  type: thread\n  max_workers: 4\nheartbeat_period: 5\n"
GLOBUS_STATE_MS = (10, 25)
GLOBUS_ACTION_S = (3, 8)


def noop() -> None:
    return None


def cli(home: Path, url: str, *args: str) -> str:
    env = {**os.environ, "BEAMLINK_HOME": str(home), "BEAMLINK_URL": url}
    done = subprocess.run([sys.executable, "-m", "beamlink", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"beamlink {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
    return done.stdout


def pass_chain(n: int) -> dict[str, Any]:
    states = {
        f"S{i}": {
            "Type": "Pass",
            "Result": i,
            "ResultPath": "$.i",
            **({"End": True} if i == n - 1 else {"Next": f"S{i + 1}"}),
        }
        for i in range(n)
    }
    return {"StartAt": "S0", "States": states}


def compute_chain(n: int) -> dict[str, Any]:
    states = {
        f"C{i}": {
            "Type": "Action",
            "ActionUrl": "beamlink:compute",
            "Parameters": {"endpoint.$": "$.ep", "function.$": "$.fn"},
            "ResultPath": "$.last",
            **({"End": True} if i == n - 1 else {"Next": f"C{i + 1}"}),
        }
        for i in range(n)
    }
    return {"StartAt": "C0", "States": states}


THREE_STEPS = {
    "StartAt": "Before",
    "States": {
        "Before": {"Type": "Pass", "Result": "x", "ResultPath": "$.before", "Next": "Hello"},
        "Hello": {
            "Type": "Action",
            "ActionUrl": "beamlink:hello_world",
            "Parameters": {"echo_string.$": "$.n"},
            "ResultPath": "$.hello",
            "Next": "After",
        },
        "After": {"Type": "Pass", "End": True},
    },
}


def seconds(start: datetime, end: datetime | None) -> float:
    assert end is not None
    return (end - start).total_seconds()


def bench_passes(client: Client, n: int) -> float:
    """Wall time on the client from the run request until the run is over, per state (the whole chain
    runs inside the start request: one transaction writes the run, its state and its log)."""
    flow = client.create_flow("bench passes", pass_chain(n))
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        run = client.run_flow(flow.id, {})
        if run.status != "SUCCEEDED":
            run = client.wait_run(run.run_id, timeout=120, poll=0.01)
        samples.append((time.perf_counter() - started) * 1000 / n)
        assert run.status == "SUCCEEDED", run
    return sorted(samples)[len(samples) // 2]


def bench_actions(client: Client, endpoint: str, function: str, n: int) -> tuple[float, float]:
    flow = client.create_flow("bench actions", compute_chain(n))
    client.wait_run(client.run_flow(flow.id, {"ep": endpoint, "fn": function}).run_id, timeout=120)  # warm-up
    per_action, first = [], []
    for _ in range(3):
        sent = time.time()
        run = client.run_flow(flow.id, {"ep": endpoint, "fn": function})
        done = client.wait_run(run.run_id, timeout=300, poll=0.05)
        assert done.status == "SUCCEEDED", done
        tasks = [t for t in client.list_tasks(endpoint_id=endpoint) if t.created_at.timestamp() >= sent]
        own = sum(
            (m["success"] - m["running"]).total_seconds()
            for t in tasks
            if "running" in (m := {x.state: x.at for x in t.transitions}) and "success" in m
        )
        per_action.append((seconds(done.start_time, done.completion_time) - own) * 1000 / n)
        firsts = [{x.state: x.at for x in t.transitions}.get("running") for t in tasks]
        first_running = min(f for f in firsts if f is not None)
        first.append((first_running.timestamp() - sent) * 1000)
    return sorted(per_action)[1], sorted(first)[1]


def bench_concurrent(client: Client, n: int) -> tuple[float, int, int, int]:
    flow = client.create_flow("bench three steps", THREE_STEPS)
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        run_ids = list(
            pool.map(lambda i: client.run_flow(flow.id, {"n": str(i)}, request_id=f"b-{i}").run_id, range(n))
        )
    assert len(set(run_ids)) == n
    deadline = time.monotonic() + 600
    while True:
        runs = client.list_runs(flow_id=flow.id, page_size=1000)
        active = [r for r in runs if r.status in ("ACTIVE", "INACTIVE")]
        if not active or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    succeeded = sum(1 for r in runs if r.status == "SUCCEEDED")
    with ThreadPoolExecutor(8) as pool:
        ends = list(
            pool.map(lambda r: sum(1 for e in client.iter_run_log(r) if e.code == "FlowSucceeded"), run_ids)
        )
    duplicated = sum(1 for count in ends if count > 1)
    return elapsed, len(runs), succeeded, duplicated


def run_backend(label: str, database_url: str | None, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="beamlink-bench-flows-") as tmp:
        home = Path(tmp)
        with ServiceProcess(home, database_url=database_url) as service:
            client = Client(service.url, home=home)
            if label == "sqlite":
                per_state = bench_passes(client, args.passes)
                print(
                    f"(a) {args.passes}-state Pass chain: {per_state:.3f} ms per state "
                    f"(target <= 5 ms; Globus {GLOBUS_STATE_MS[0]}-{GLOBUS_STATE_MS[1]} ms: "
                    f"{GLOBUS_STATE_MS[0] / per_state:.0f}x-{GLOBUS_STATE_MS[1] / per_state:.0f}x less)"
                )
                cli(home, service.url, "endpoint", "configure", "bench")
                (home / "endpoints" / "bench" / "config.yaml").write_text(THREAD_CONFIG)
                out = cli(home, service.url, "endpoint", "start", "bench")
                endpoint = out.split(": ", 1)[1].split(" ", 1)[0]
                try:
                    function = client.register_function(noop)
                    per_action, first = bench_actions(client, endpoint, function, args.actions)
                finally:
                    cli(home, service.url, "endpoint", "stop", "bench")
                print(
                    f"(b) {args.actions}-step no-op compute chain: {per_action:.2f} ms per action beyond the "
                    f"tasks' own time (target <= 15 ms; Globus {GLOBUS_ACTION_S[0]}-{GLOBUS_ACTION_S[1]} s: "
                    f"{GLOBUS_ACTION_S[0] * 1000 / per_action:.0f}x less)"
                )
                print(f"(c) run request -> first action running: {first:.1f} ms")
            elapsed, seen, succeeded, duplicated = bench_concurrent(client, args.runs)
            lost = args.runs - seen
            print(
                f"(d) {label}: {args.runs} concurrent 3-step runs in {elapsed:.1f} s "
                f"({args.runs / elapsed:.0f} runs/s): {succeeded} SUCCEEDED, {lost} lost, "
                f"{duplicated} duplicated"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--passes", type=int, default=200)
    parser.add_argument("--actions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    run_backend("sqlite", None, args)
    if args.no_postgres:
        return
    problem = postgres_problem()
    if problem:
        print(f"(d) postgresql: skipped ({problem})")
        return
    url = create_postgres_database()
    try:
        run_backend("postgresql", url, args)
    finally:
        drop_postgres_database(url)


if __name__ == "__main__":
    main()
