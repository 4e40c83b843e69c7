"""Search, measured: query latency over 100,000 records on SQLite and PostgreSQL, through the HTTP API.

    .venv/bin/python benchmarks/search.py [--records 100000] [--queries 200] [--no-postgres]

A real service per backend; records are ingested through the SDK in batches of 1,000 (the ingest rate is
printed too). Each record: a title and description drawn from a small vocabulary, a sample, an
instrument, a temperature, a date, keywords, and a visible_to of public or one of 20 groups-worth of
users. Queries, as a signed-in user who sees about half of the records: one or two words of full text
plus a terms facet on `sample` (the portal's search page), 10 results per page. Reported: p50 and p95
per backend, the ratio PostgreSQL / SQLite, and the ratio of each p95 to the target.

Target: p95 <= 50 ms on SQLite (issue 6). Globus Search publishes no latency figure; its limits are
10,000 results per query and 5 requests/s (shared/reference/transfer-search-portal.md, B1).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from beamlink.testing.databases import create_postgres_database, drop_postgres_database, postgres_problem

TARGET_P95_MS = 50.0
WORDS = [
    "lysozyme", "silica", "gel", "glycerol", "beads", "protein", "colloid", "polymer", "membrane", "crystal",
    "film", "powder", "solution", "aerogel", "micelle", "vesicle", "nanoparticle", "emulsion", "foam",
    "glass", "alloy", "oxide", "perovskite", "graphene", "cellulose",
]  # fmt: skip
INSTRUMENTS = ["8-ID-I", "8-ID-E", "12-ID-B", "1-ID-E", "2-ID-D", "26-ID-C"]
KEYWORDS = ["xpcs", "saxs", "waxs", "hedm", "ssx", "ptycho", "reference", "calibration", "dark", "flat"]


def record(i: int, rng: random.Random, readers: list[str]) -> dict[str, Any]:
    words = rng.sample(WORDS, 3)
    visible = ["public"] if i % 2 == 0 else [f"user:{rng.choice(readers)}"]
    return {
        "subject": f"https://data.example.org/run/{i:07d}",
        "entries": [
            {
                "visible_to": visible,
                "content": {
                    "title": f"{words[0].title()} in {words[1]} run {i}",
                    "description": f"Measurement of {words[0]} with {words[2]} at beamline",
                    "sample": words[0],
                    "instrument": rng.choice(INSTRUMENTS),
                    "temperature": round(rng.uniform(4, 400), 1),
                    "taken": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z",
                    "keywords": rng.sample(KEYWORDS, 2),
                },
            }
        ],
    }


def measure(label: str, service: ServiceProcess, records: int, queries: int) -> dict[str, float]:
    admin = Client(service.url, home=service.home)
    password = "bench-password-1"
    readers = [f"reader{n}" for n in range(5)]
    for name in readers:
        admin.create_user(name, password)
    user = Client(service.url, token="-", home=service.home)
    user.login(readers[0], password)
    admin.create_index("bench")
    rng = random.Random(7)
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for i in range(records):
        batch.append(record(i, rng, readers))
        if len(batch) == 1000 or i == records - 1:
            admin.ingest("bench", {"records": batch})
            batch = []
            print(f"\r  {label}: ingested {i + 1:,}/{records:,}", end="", file=sys.stderr)
    ingest_s = time.perf_counter() - started
    print(file=sys.stderr)
    for _ in range(10):  # warm caches and the connection pool
        user.search("bench", rng.choice(WORDS), facets=[{"field_name": "sample"}])
    timings = []
    hits = []
    for n in range(queries):
        q = rng.choice(WORDS) if n % 2 else f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
        t0 = time.perf_counter()
        result = user.search("bench", q, facets=[{"field_name": "sample", "size": 10}], limit=10)
        timings.append((time.perf_counter() - t0) * 1000)
        hits.append(result.total)
    timings.sort()
    return {
        "ingest_per_s": records / ingest_s,
        "p50": statistics.median(timings),
        "p95": timings[int(len(timings) * 0.95) - 1],
        "hits": statistics.median(hits),
    }


def run_backend(label: str, database_url: str | None, records: int, queries: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"beamlink-bench-search-{label}-") as tmp:
        service = ServiceProcess(Path(tmp), database_url=database_url).start()
        try:
            result = measure(label, service, records, queries)
            print(f"  {label}: p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms", file=sys.stderr)
            return result
        finally:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    results = {"SQLite": run_backend("sqlite", None, args.records, args.queries)}
    if not args.no_postgres:
        problem = postgres_problem()
        if problem:
            print(f"PostgreSQL skipped: {problem}")
        else:
            url = create_postgres_database()
            try:
                results["PostgreSQL"] = run_backend("postgresql", url, args.records, args.queries)
            finally:
                drop_postgres_database(url)

    print(f"\nSearch over {args.records:,} records, {args.queries} queries (text + one facet, 10 a page)")
    print(
        f"{'backend':<12}{'ingest rec/s':>14}{'median hits':>13}{'p50 ms':>9}{'p95 ms':>9}{'p95/target':>12}"
    )
    for label, r in results.items():
        print(
            f"{label:<12}{r['ingest_per_s']:>14,.0f}{r['hits']:>13,.0f}{r['p50']:>9.1f}{r['p95']:>9.1f}"
            f"{r['p95'] / TARGET_P95_MS:>12.2f}"
        )
    if "PostgreSQL" in results:
        ratio = results["PostgreSQL"]["p95"] / results["SQLite"]["p95"]
        print(f"PostgreSQL p95 / SQLite p95: {ratio:.2f}")
    verdict = "met" if results["SQLite"]["p95"] <= TARGET_P95_MS else "MISSED"
    print(f"target p95 <= {TARGET_P95_MS:.0f} ms on SQLite: {verdict}")


if __name__ == "__main__":
    main()
