"""The XPCS demo, measured: (a) correlation speed against scikit-beam on the same frames.

    .venv/bin/python benchmarks/demo.py [--shape 256 256] [--frames 4096] [--dpl 4] [--batch-frames 256]
        [--repeat 1] [--seed 0] [--cache ~/.cache/beamlink/bench] [--no-skbeam] [--skip-correlation]

(a) One synthetic measurement (Brownian speckle with a known D, the default q range scaled to the detector,
    one static bin per dynamic bin, written once to --cache and reused) is correlated three ways:
    beamlink's ``correlate_g2`` streamed from the HDF5 file (what the flow's correlate step does),
    ``correlate_g2`` on the frames in memory, and scikit-beam's ``skbeam.core.correlation.
    multi_tau_auto_corr`` on the same in-memory frames with the dynamic q partition (``dqmap``) as its
    label array. Speed is in megapixel-frames per second: detector pixels (height·width, masked ones
    included, the same count for every row) x frames / 10⁶ / seconds. The benchmark then checks that the
    two g2 agree and prints D against the truth.

Multi-tau conventions. beamlink (boost-corr ``gen_tau_bin``) with ``dpl``: level 0 has lags 1..2·dpl,
level l ≥ 1 has (dpl+1..2·dpl)·2^l. scikit-beam (``multi_tau_lags(num_levels, num_bufs)``): level 0 has
0..num_bufs-1, level l ≥ 1 has (num_bufs/2..num_bufs-1)·2^l. With num_bufs = 2·dpl both keep 2·dpl frames
per level and coarse-grain the same way (level l frames are pairwise means of consecutive level l-1
frames, an odd trailing frame waits), and both normalise symmetrically with the bin averages taken before
the ratio, g2 = ⟨I(t)I(t+k)⟩_{t,bin} / (⟨I⟩_{past,bin}·⟨I⟩_{future,bin}) (Lumma et al. 2000). The grids are
shifted by one channel per level: scikit-beam also has τ = 0 and k = dpl at levels ≥ 1, we have k = 2·dpl.
The lags at the same (τ, level), τ = 1..2·dpl-1 at level 0 and (dpl+1..2·dpl-1)·2^l above, are the same
estimator; since beamlink averages static-bin ratios inside a dynamic bin, the benchmark measurement has one
static bin per dynamic bin, and the two then agree to rounding (~1e-14). A τ present in both grids at
different levels (our 2·dpl·2^l against their dpl·2^(l+1)) averages different frames and is left out.
scikit-beam's num_levels is set to our number of levels.

Where scikit-beam comes from (it is not a project dependency; it exists on PyPI only as the sdist
scikit-beam==0.0.27). ``pip install scikit-beam==0.0.27`` does build here with NumPy 2 (about 80 s: a C
compiler, Cython and OpenMP for its extensions), but ``import skbeam.core.correlation`` then also needs
scikit-image and six, because ``skbeam/core/roi.py`` imports skimage at module level. So: if
``skbeam.core.correlation`` imports, the installed one is used; otherwise the benchmark runs
``python -m pip download scikit-beam==0.0.27 --no-deps --no-binary scikit-beam -d <cache>`` once (the
sdist, ~0.6 MB; pip prepares its metadata in an isolated build environment, ~20 s), reads
``skbeam/core/correlation.py`` from the tarball unchanged, and gives it the two helpers it imports,
``roi.extract_label_indices`` and ``utils.multi_tau_lags``, cut verbatim out of the sdist's ``roi.py`` and
``utils.py`` with ``ast`` (both pure NumPy; the rest of those modules needs scikit-image and six). Nothing
is installed. If neither works (no network, no pip), scikit-beam is skipped with the reason printed.

Targets: correlate_g2 >= 3x scikit-beam's multi_tau_auto_corr on the same frames, streamed from HDF5
included; g2 equal to 1e-12 on the common lags. Default size: ~3-5 s of our correlation on one core.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from beamlink.apps.xpcs.correlate import G2Curves, correlate_g2
from beamlink.apps.xpcs.fit import fit_diffusion, fit_g2, reliable_bins
from beamlink.apps.xpcs.measurement import iter_frames, read_measurement
from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, write_synthetic_measurement
from beamlink.errors import InvalidInput

if TYPE_CHECKING:
    from beamlink.sdk import Client

SKBEAM_VERSION = "0.0.27"
SKBEAM_SDIST = f"scikit_beam-{SKBEAM_VERSION}.tar.gz"
_SDIST_PACKAGE = "_skbeam_sdist"  # where the sdist's modules are registered, so no real `skbeam` is shadowed


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "beamlink" / "bench"


# --- scikit-beam ---------------------------------------------------------------------------------------


def _cut_functions(source: str, names: set[str], filename: str, module: str) -> types.ModuleType:
    """A module holding only the top-level functions ``names`` of ``source``, verbatim, with NumPy."""
    tree = ast.parse(source)
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    if {n.name for n in found} != names:
        raise RuntimeError(f"{filename} lacks {sorted(names - {n.name for n in found})}")
    code = "import numpy as np\n\n" + "\n\n".join(ast.get_source_segment(source, n) or "" for n in found)
    mod = types.ModuleType(module)
    exec(compile(code, filename, "exec"), mod.__dict__)
    return mod


def _skbeam_from_sdist(sdist: Path) -> types.ModuleType:
    """skbeam/core/correlation.py of the sdist, run as module ``_skbeam_sdist.core.correlation``."""
    root = f"scikit_beam-{SKBEAM_VERSION}/skbeam/core"
    with tarfile.open(sdist) as tar:
        sources = {}
        for name in ("correlation.py", "roi.py", "utils.py"):
            member = tar.extractfile(f"{root}/{name}")
            if member is None:
                raise RuntimeError(f"{sdist} has no {root}/{name}")
            sources[name] = member.read().decode()
    core = f"{_SDIST_PACKAGE}.core"
    for package in (_SDIST_PACKAGE, core):
        mod = types.ModuleType(package)
        mod.__path__ = []  # a package with nothing to find on disk: only what is registered below
        sys.modules[package] = mod
    origin = f"{sdist}/{root}"
    sys.modules[f"{core}.roi"] = _cut_functions(
        sources["roi.py"], {"extract_label_indices"}, f"{origin}/roi.py", f"{core}.roi"
    )
    sys.modules[f"{core}.utils"] = _cut_functions(
        sources["utils.py"], {"multi_tau_lags"}, f"{origin}/utils.py", f"{core}.utils"
    )
    correlation = types.ModuleType(f"{core}.correlation")
    correlation.__package__ = core
    correlation.__file__ = f"{origin}/correlation.py"
    sys.modules[correlation.__name__] = correlation
    exec(compile(sources["correlation.py"], correlation.__file__, "exec"), correlation.__dict__)
    return correlation


def load_skbeam(cache: Path) -> tuple[Any | None, str]:
    """(the skbeam.core.correlation module or None, where it came from or why it is missing)."""
    try:
        import skbeam.core.correlation as installed  # type: ignore[import-not-found]

        return installed, f"installed scikit-beam ({Path(installed.__file__).parent.parent})"
    except ImportError as exc:
        not_installed = f"not installed: {exc}"
    sdist = cache / SKBEAM_SDIST
    if not sdist.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"scikit-beam=={SKBEAM_VERSION}",
            "--no-deps",
            "--no-binary",
            "scikit-beam",
            "--disable-pip-version-check",
            "-d",
            str(cache),
        ]
        print(f"  fetching the scikit-beam sdist: {' '.join(command[2:])}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode or not sdist.is_file():
            lines = done.stderr.strip().splitlines() or ["no output"]
            errors = [line for line in lines if line.startswith("ERROR")] or lines
            return None, f"{not_installed}; pip download failed: {errors[-1]}"
    try:
        module = _skbeam_from_sdist(sdist)
    except (OSError, tarfile.TarError, SyntaxError, RuntimeError, ImportError) as exc:
        return None, f"{not_installed}; the sdist {sdist} did not load ({exc})"
    return module, f"skbeam/core/correlation.py read from the sdist {sdist} (skbeam {not_installed})"


def skbeam_levels(num_levels: int, num_bufs: int) -> NDArray[np.int64]:
    """The multi-tau level of each row of skbeam's g2 (num_bufs rows at level 0, num_bufs/2 above)."""
    return np.concatenate(
        [np.zeros(num_bufs, dtype=np.int64)]
        + [np.full(num_bufs // 2, level, dtype=np.int64) for level in range(1, num_levels)]
    )


def compare_g2(
    ours: G2Curves, theirs: NDArray[np.float64], lags: NDArray[np.int64], num_bufs: int
) -> tuple[float, int]:
    """Max |g2_theirs/g2_ours - 1| over lags with the same (τ, level) in both; and how many such lags."""
    levels = skbeam_levels(int(ours.levels.max()) + 1, num_bufs)[: lags.size]
    worst, common = 0.0, 0
    for i, (tau, level) in enumerate(zip(ours.tau_frames.tolist(), ours.levels.tolist(), strict=True)):
        rows = np.flatnonzero((lags == tau) & (levels == level))
        if rows.size == 0:
            continue
        common += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.asarray(theirs[rows[0]], dtype=np.float64) / ours.g2[i]
        finite = np.isfinite(ratio)
        if finite.any():
            worst = max(worst, float(np.max(np.abs(ratio[finite] - 1.0))))
    return worst, common


# --- (a) correlation speed -----------------------------------------------------------------------------


def bench_config(shape: tuple[int, int], frames: int, seed: int) -> SyntheticXpcsConfig:
    """The default synthetic measurement scaled to ``shape``: the same q range (rings and distance scale
    with the detector), so the same decay rates, with one static bin per dynamic bin (see the docstring)."""
    height, width = shape
    scale = min(height, width) / 64
    return SyntheticXpcsConfig(
        shape=shape,
        n_frames=frames,
        beam_center_yx_px=(height / 2, width / 2),
        ring_radii_px=(4.0 * scale, 28.0 * scale),
        distance_m=5.0 * scale,
        n_static_per_dynamic=1,
        seed=seed,
    )


def measurement_file(cache: Path, config: SyntheticXpcsConfig) -> tuple[Path, float]:
    """The cached measurement for ``config`` (written on first use); returns (path, seconds spent writing)."""
    height, width = config.shape
    path = cache / f"xpcs-{height}x{width}-{config.n_frames}f-seed{config.seed}.h5"
    if path.is_file():
        return path, 0.0
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    print(f"  writing the measurement {path} (once) ...", flush=True)
    started = time.perf_counter()
    write_synthetic_measurement(partial, config)
    partial.replace(path)  # only a complete file is ever found under the final name
    return path, time.perf_counter() - started


def _best(repeat: int, run: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def correlation_speed(
    *,
    shape: tuple[int, int] = (256, 256),
    frames: int = 4096,
    dpl: int = 4,
    batch_frames: int = 256,
    seed: int = 0,
    repeat: int = 1,
    cache: Path | None = None,
    skbeam: bool = True,
) -> dict[str, Any]:
    """Run part (a), print its table, and return the numbers (seconds and Mpx-frames/s per correlator)."""
    cache = cache or default_cache()
    config = bench_config(shape, frames, seed)
    path, written_s = measurement_file(cache, config)
    header = read_measurement(path, load_frames=False)
    partition, dt = header.partition, header.frame_interval_s
    height, width = header.geometry.shape
    mpx_frames = height * width * header.n_frames / 1e6
    labelled = int(np.count_nonzero(partition.mask))

    streamed_s, _ = _best(
        repeat,
        lambda: correlate_g2(
            iter_frames(path, batch_frames=batch_frames),
            partition,
            frame_interval_s=dt,
            dpl=dpl,
            batch_frames=batch_frames,
        ),
    )
    stack = read_measurement(path).frames
    assert stack is not None
    memory_s, curves = _best(
        repeat,
        lambda: correlate_g2(stack, partition, frame_interval_s=dt, dpl=dpl, batch_frames=batch_frames),
    )
    n_levels = int(curves.levels.max()) + 1
    num_bufs = 2 * dpl

    module, origin = load_skbeam(cache) if skbeam else (None, "skipped (--no-skbeam)")
    skbeam_s: float | None = None
    agreement: tuple[float, int] | None = None
    if module is not None:
        print(f"  running scikit-beam multi_tau_auto_corr ({header.n_frames} frames) ...", flush=True)
        started = time.perf_counter()
        g2, lags = module.multi_tau_auto_corr(n_levels, num_bufs, partition.dqmap, stack)
        skbeam_s = time.perf_counter() - started
        agreement = compare_g2(curves, np.asarray(g2), np.asarray(lags, dtype=np.int64), num_bufs)

    size = path.stat().st_size / 2**30
    written = f"written in {written_s:.1f} s" if written_s else "cached"
    print(
        f"(a) XPCS correlation speed: {height}x{width} px detector, {labelled:,} px in {partition.n_dynamic} "
        f"q bins ({labelled / (height * width):.0%}), {header.n_frames} frames,\n"
        f"    dpl {dpl} (scikit-beam num_bufs {num_bufs}), {n_levels} levels"
    )
    print(f"    measurement: {path} ({size:.2f} GiB, {written})")
    print(f"    scikit-beam: {origin}")
    rows = [
        ("beamlink correlate_g2, streamed from HDF5", streamed_s),
        ("beamlink correlate_g2, frames in memory", memory_s),
    ]
    if skbeam_s is not None:
        rows.append(("scikit-beam multi_tau_auto_corr, in memory", skbeam_s))
    print(f"    {'correlator':<44}{'seconds':>9}{'Mpx-frames/s':>15}{'vs scikit-beam':>16}")
    for label, seconds in rows:
        ratio = f"{skbeam_s / seconds:.1f}x" if skbeam_s is not None else "-"
        print(f"    {label:<44}{seconds:>9.2f}{mpx_frames / seconds:>15.1f}{ratio:>16}")
    if agreement is not None:
        worst, common = agreement
        print(
            f"    g2 agreement: max |g2_skbeam / g2_beamlink - 1| = {worst:.1e} over {common} common "
            f"(τ, level) lags\n      x {partition.n_dynamic} q bins (target <= 1e-12: "
            f"{'met' if worst <= 1e-12 else 'MISSED'})"
        )
    fit = fit_g2(curves)
    use = reliable_bins(fit, frame_interval_s=dt, n_frames=curves.n_frames)
    d_true = float(header.truth["diffusion_nm2_s"])
    try:
        diffusion = fit_diffusion(curves.q2, fit.gamma_per_s, fit.gamma_err, where=use)
    except InvalidInput as exc:  # too few frames for 2 resolved q bins: the speed numbers still stand
        print(f"    D not fitted: {exc.message}")
    else:
        print(
            f"    D = {diffusion.diffusion_nm2_s * 1e-6:.4g} ± {diffusion.diffusion_err * 1e-6:.2g} µm²/s "
            f"(true {d_true * 1e-6:.4g}, {diffusion.diffusion_nm2_s / d_true - 1:+.2%}) from "
            f"{diffusion.n_bins} of {partition.n_dynamic} q bins"
        )
    if skbeam_s is not None:
        speedup = skbeam_s / streamed_s
        print(
            f"    target >= 3x scikit-beam, streamed from HDF5: {speedup:.1f}x "
            f"({'met' if speedup >= 3 else 'MISSED'})"
        )
    return {
        "mpx_frames": mpx_frames,
        "streamed_s": streamed_s,
        "memory_s": memory_s,
        "skbeam_s": skbeam_s,
        "skbeam": origin,
        "g2_max_rel_diff": None if agreement is None else agreement[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", type=int, nargs=2, default=[256, 256], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--frames", type=int, default=4096)
    parser.add_argument(
        "--dpl", type=int, default=4, help="lags per multi-tau level (scikit-beam: 2*dpl bufs)"
    )
    parser.add_argument("--batch-frames", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="best of N for beamlink's timings")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="measurement and sdist cache")
    parser.add_argument("--no-skbeam", action="store_true", help="time beamlink only")
    parser.add_argument("--skip-correlation", action="store_true", help="skip part (a)")
    parser.add_argument("--skip-flow", action="store_true", help="skip part (b)")
    parser.add_argument("--runs", type=int, default=5, help="(b): measured runs after one warm-up run")
    parser.add_argument("--flow-frames", type=int, default=4096, help="(b): frames (the demo's default)")
    parser.add_argument("--flow-size", type=int, default=128, help="(b): detector size (the demo's default)")
    args = parser.parse_args()
    if args.skip_correlation:
        print("(a) XPCS correlation speed: skipped (--skip-correlation)")
    else:
        correlation_speed(
            shape=(args.shape[0], args.shape[1]),
            frames=args.frames,
            dpl=args.dpl,
            batch_frames=args.batch_frames,
            seed=args.seed,
            repeat=args.repeat,
            cache=args.cache,
            skbeam=not args.no_skbeam,
        )
    if args.skip_flow:
        print("(b) end-to-end flow overhead: skipped (--skip-flow)")
    else:
        flow_overhead(runs=args.runs, frames=args.flow_frames, size=args.flow_size)


# --- (b) the XPCS flow end to end: the steps' own work against orchestration ---------------------------


def _cli(home: Path, *args: str) -> str:
    env = {**os.environ, "BEAMLINK_HOME": str(home)}
    env.pop("BEAMLINK_URL", None)
    done = subprocess.run([sys.executable, "-m", "beamlink", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"beamlink {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _seconds(start: datetime | None, end: datetime | None) -> float:
    return (end - start).total_seconds() if start is not None and end is not None else 0.0


def _step_work(client: Client, output: dict[str, Any], name: str, kind: str) -> float:
    """The step's own work: a task's running time on its endpoint, a transfer's active time."""
    details = (output.get(name) or {}).get("details") or {}
    if kind == "compute":
        task = client.get_task(details["results"][0]["task_id"])
        at = {t.state: t.at for t in task.transitions}
        return _seconds(at.get("running"), at.get("success"))
    if kind == "transfer":
        transfer = client.get_transfer(details["id"])
        return _seconds(transfer.started_at, transfer.completed_at)
    return 0.0


def flow_overhead(*, runs: int, frames: int, size: int) -> None:
    """Bring up the demo site in a temporary home, run the XPCS app ``runs`` times (after a warm-up run)
    on copies of one measurement, and split each run into the steps' own work and the rest."""
    from beamlink.apps.registry import load_app
    from beamlink.apps.tools import Compute, Publish, Transfer
    from beamlink.sdk import Client
    from beamlink.service.launcher import free_port

    print(
        f"\n(b) XPCS flow end to end on the demo site: {frames} frames of {size}x{size}, "
        f"{runs} runs + 1 warm-up"
    )
    xpcs = load_app("xpcs")
    kinds = {
        t.name: "compute"
        if isinstance(t, Compute)
        else "transfer"
        if isinstance(t, Transfer)
        else "ingest"
        if isinstance(t, Publish)
        else "expression"
        for t in xpcs.tools
    }
    with tempfile.TemporaryDirectory(prefix="beamlink-bench-demo-") as tmp:
        home = Path(tmp) / "site"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        began = time.monotonic()
        _cli(home, "up", "--detach", "--home", str(home), "--port", str(port))
        print(f"    site up in {time.monotonic() - began:.1f} s (service, 3 collections, 2 endpoints)")
        try:
            incoming = home / "data" / "local" / "incoming"
            incoming.mkdir(parents=True, exist_ok=True)
            config = SyntheticXpcsConfig(
                shape=(size, size),
                n_frames=frames,
                beam_center_yx_px=(size / 2, size / 2),
                ring_radii_px=(size / 16, size * 7 / 16),
            )
            first = incoming / "bench-0.h5"
            write_synthetic_measurement(first, config)
            for i in range(1, runs + 1):
                shutil.copyfile(first, incoming / f"bench-{i}.h5")
            payload = {"remote_root": str(home / "data" / "remote"), "index": "xpcs-bench"}
            rows = []
            with Client(url, home=home) as client:
                for i in range(runs + 1):
                    run, _ = xpcs.start(client, {**payload, "measurement": f"incoming/bench-{i}.h5"})
                    info = client.wait_run(run.run_id, timeout=600, poll=0.25)  # a light observer
                    if info.status != "SUCCEEDED":
                        raise SystemExit(f"run {info.run_id} {info.status}: {info.error}: {info.cause}")
                    if i == 0:
                        continue  # warm-up: Parsl's worker starts, non_compute imports matplotlib
                    total = _seconds(info.start_time, info.completion_time)
                    work = {n: _step_work(client, info.output, n, k) for n, k in kinds.items()}
                    events = list(client.iter_run_log(run.run_id))
                    started = {
                        e.state_name: e.time for e in events if e.code.endswith("Started") and e.state_name
                    }
                    ended = {
                        e.state_name: e.time for e in events if e.code.endswith("Completed") and e.state_name
                    }
                    # A search ingest runs inside the engine's transaction: its whole action time is its work.
                    for name, kind in kinds.items():
                        if kind == "ingest":
                            work[name] = _seconds(started.get(name), ended.get(name))
                    rows.append((total, work, {n: _seconds(started.get(n), ended.get(n)) for n in kinds}))
        finally:
            _cli(home, "down", "--home", str(home))
    print(
        f"    {'step':<16} {'kind':<10} {'step s':>8} {'work s':>8} {'overhead s':>11}"
        f"   (median of {runs} runs)"
    )
    for name, kind in kinds.items():
        step = float(np.median([r[2][name] for r in rows]))
        own = float(np.median([r[1][name] for r in rows]))
        print(f"    {name:<16} {kind:<10} {step:8.3f} {own:8.3f} {step - own:11.3f}")
    totals = np.array([r[0] for r in rows])
    works = np.array([sum(r[1].values()) for r in rows])
    overhead = totals - works
    share = overhead / totals
    print(
        f"    run: median {np.median(totals):.3f} s; the steps' own work {np.median(works):.3f} s; "
        f"orchestration {np.median(overhead):.3f} s = {np.median(share):.1%} of the run "
        f"(max {share.max():.1%})"
    )
    print(
        f"    target <= 5 % of the run: {'met' if np.median(share) <= 0.05 else 'MISSED'}; "
        "Globus published 20 % for the XPCS flow (shared/reference/globus-flows-gladier.md 6.2)"
    )


if __name__ == "__main__":
    main()
