"""Data-plane throughput: one large file and many small files, agent to agent over loopback and same host.

    .venv/bin/python benchmarks/transfer.py [--size-mib 2048] [--files 20000] [--runs 3]
                                                       [--concurrency 8] [--chunk-mib 64] [--dir DIR]

The source's data server runs in a separate process (as the source agent would), the pull in this one.
Each case runs ``--runs`` times; the median is printed, with the range. Before every run the page cache's
dirty pages are flushed (``sync``) so one run's write-back does not slow the next; the source files stay
cached (warm source), as in reference §A6's "warm" columns. Baselines on the same files: ``cp`` for the
large file, ``cp -r`` and ``rsync -a`` for the small ones. Targets (reference §A9): same host >= 80 % of
cp + sync (the copies of large files are durable: each chunk is fsynced before its journal line);
loopback >= 1 GB/s; small files >= rsync's files/s; verify_checksum <= 15 % extra time. The machine's
other load shows in the spread of the runs: compare rows of one invocation, not across invocations.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from beamlink.agents.collection.dataserver import DataServer
from beamlink.agents.collection.paths import CollectionRoot
from beamlink.agents.collection.pull import TransferSpec, TransferStatus, run_transfer
from beamlink.agents.collection.sources import LocalSource, SourceClient
from beamlink.protocol.data_tokens import key_from_hex, key_to_hex, new_key, sign


def serve(root: str, port_file: str, key_hex: str) -> None:
    """The source agent's data server, in its own process, until SIGTERM."""

    async def main() -> None:
        server = DataServer(CollectionRoot(root), collection_id="source", key=key_from_hex(key_hex))
        port = await server.start()
        Path(port_file).write_text(str(port))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(main())


def make_source(root: Path, size: int, files: int) -> None:
    big = root / "big.bin"
    if not big.exists() or big.stat().st_size != size:
        block = os.urandom(8 << 20)
        with open(big, "wb") as out:
            for offset in range(0, size, len(block)):
                out.write(block[: min(len(block), size - offset)])
    small = root / "small"
    if small.exists() and sum(1 for _ in small.rglob("f*")) != files:
        shutil.rmtree(small)
    if not small.exists():
        for directory in range(20):
            (small / f"d{directory:02d}").mkdir(parents=True)
        payload = os.urandom(4096)
        for index in range(files):
            (small / f"d{index % 20:02d}" / f"f{index:06d}").write_bytes(payload)


def timed(runs: int, prepare: Callable[[], None], action: Callable[[], None]) -> list[float]:
    samples = []
    for _ in range(runs):
        prepare()
        subprocess.run(["sync"], check=True)
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def report(name: str, samples: list[float], amount: float, unit: str) -> float:
    rates = sorted(amount / s for s in samples)
    median = statistics.median(rates)
    print(f"{name:<36} {median:10.2f} {unit}   (runs: {', '.join(f'{r:.2f}' for r in rates)})", flush=True)
    return median


def pull(spec: TransferSpec, destination: Path, source: SourceClient | LocalSource) -> None:
    async def main() -> None:
        summary = await run_transfer(spec, local=CollectionRoot(destination), source=source)
        if summary.status is not TransferStatus.SUCCEEDED:
            raise SystemExit(f"transfer failed: {summary.reason}")

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--chunk-mib", type=int, default=64)
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--only", choices=["large", "small"], default=None)
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return

    scratch = Path(args.dir or tempfile.mkdtemp(prefix="beamlink-bench-"))
    source_root, destination = scratch / "source", scratch / "destination"
    source_root.mkdir(parents=True, exist_ok=True)
    size = args.size_mib << 20
    print(f"preparing {args.size_mib} MiB and {args.files} x 4 KiB files in {scratch} ...", flush=True)
    make_source(source_root, size, args.files)
    key = new_key()
    port_file = scratch / "port"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(source_root), str(port_file), key_to_hex(key)]
    )
    try:
        while not port_file.exists() or not port_file.read_text():
            if server.poll() is not None:
                raise SystemExit("the data server did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        operations = ["read", "list", "checksum"]
        token = sign(key, collection_id="source", path="", operations=operations, ttl_seconds=3600)
        sources: dict[str, SourceClient | LocalSource] = {
            "local fast path": LocalSource(CollectionRoot(source_root)),
            "loopback pull": SourceClient(url, token),
        }

        def fresh() -> None:
            shutil.rmtree(destination, ignore_errors=True)
            destination.mkdir()

        def case(name: str, amount: float, unit: str, action: Callable[[], None]) -> None:
            report(name, timed(args.runs, fresh, action), amount, unit)

        def pulls(path: str, recursive: bool, amount: float, unit: str) -> None:
            for label, source in sources.items():
                for verify in (False, True):
                    spec = TransferSpec(
                        items=[(path, path, recursive)],
                        verify_checksum=verify,
                        concurrency=args.concurrency,
                        chunk_size=args.chunk_mib << 20,
                    )
                    name = label + (" + verify" if verify else "")
                    case(name, amount, unit, functools.partial(pull, spec, destination, source))

        if args.only in (None, "large"):
            print(f"\n-- one {args.size_mib} MiB file (GB/s) --")
            big = source_root / "big.bin"
            case("cp (baseline)", size / 1e9, "GB/s", lambda: _run("cp", big, destination))
            case("cp + sync (baseline)", size / 1e9, "GB/s", lambda: _run("cp", big, destination, sync=True))
            pulls("big.bin", False, size / 1e9, "GB/s")
        if args.only in (None, "small"):
            print(f"\n-- {args.files} x 4 KiB files in 20 directories (files/s) --")
            small = source_root / "small"
            case("cp -r (baseline)", args.files, "files/s", lambda: _run("cp", "-r", small, destination))
            case(
                "rsync -a (baseline)", args.files, "files/s", lambda: _run("rsync", "-a", small, destination)
            )
            pulls("small", True, args.files, "files/s")
        for source in sources.values():
            source.close()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(destination, ignore_errors=True)
        if args.dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(*command: str | Path, sync: bool = False) -> None:
    subprocess.run([str(part) for part in command], check=True)
    if sync:
        subprocess.run(["sync"], check=True)


if __name__ == "__main__":
    main()
