# ruff: noqa: RUF002  (Greek letters in the text are meant)
"""The science kernels, measured: speed and quality on fixed synthetic inputs, beside a pip reference.

    .venv/bin/python benchmarks/science.py [--only ssx,hedm,braggnn,ptycho] [--no-references]
        [--reinstall-references] [--repeat 3] [--seed 0] [--threads N] [--cache ~/.cache/beamlink/bench]
        [--ssx-size 1024] [--hedm-frames 120] [--hedm-size 512] [--hedm-peaks 150]
        [--braggnn-patches 10000] [--braggnn-epochs 5] [--braggnn-test 1000]
        [--ptycho-n 64] [--ptycho-iter 30]

Each kernel runs on one seeded input from its package's ``synthetic`` generator. Our times are the best of
--repeat runs (after the input is built; a run that is too slow to repeat says so); throughput is in the unit
the field uses; the quality check is the issue's, on the same input. Where a reference exists, it runs on the
same input (handed over in a temporary .npz) in a separate interpreter, is scored by the same code in this
process, and the ratio column is reference seconds / beamlink seconds (above 1: beamlink is faster).

(ssx)     ``classify.find_spots_run`` (DIALS dispersion threshold, 4-connected spots, filters, centroids, hit
          rule) on 8 stills of --ssx-size² px (4 with 60 spots, 2 with 5, 2 blank; 120-2000 photons per spot).
          Check: recall and precision ≥ 0.95 for spots ≥ 120 photons. Reference: ImageD11
          ``cImageD11.connectedpixels`` (4-connected, con8=0) + ``blobproperties``/``blob_moments`` (reference
          note §2.5). It is not the same algorithm: a global threshold, here median + 5·√median of each
          still (computed inside its timed loop), then the same ≥ 3 px size filter and ≥ 16 spots hit rule.
(hedm)    ``peaksearch.search_stack`` (3-D 26-connected blobs; as one block and as blocks of 32 frames, the
          flow's fan-out run in-process), ``framewise`` (MIDAS-style per-frame search + merge across ω) and
          ``pvfit.refine_peaks`` on a ``make_blob_stack`` of --hedm-frames x --hedm-size² px with --hedm-peaks
          peaks (the note's §3.3 size). Check: recall ≥ 0.98, mean (frame, y, z) centroid error ≤ 0.1 px.
          Reference: ImageD11 ``labelimage`` (per-frame ``peaksearch`` + ``mergelast`` + ``finalise``, i.e.
          8-connected pixels merged across frames by overlap; note §3.5) at the same threshold on the same
          dark-subtracted frames; scored on all its blobs and on those of ≥ 4 px (our min_px).
(braggnn) ``training.train`` (--braggnn-patches x --braggnn-epochs, Adam lr 2·10⁻³ cosine, batch 256: the
          test suite's recipe on half its 20,000 patches, which measured 0.064 px held-out against its
          0.045 px, at half the training time), ``predict`` on --braggnn-test held-out patches (best of
          --repeat after one warm-up) and the least-squares pseudo-Voigt ``fit.fit_centres`` on the same
          patches (one run). Check: mean centre error ≤ 0.1 px and inference faster than fitting. No pip
          reference exists (note §4.6); the fit is the baseline. --threads sets torch's thread count
          (default: torch's own; on a loaded machine 1 thread trains faster than 2).
(ptycho)  ``reconstruct`` ePIE (30 it), rPIE (30 it) and DM (60 it; 2·--ptycho-iter) with the known probe on
          ``make_scan(n=--ptycho-n)`` (n = 64: 81 views of 32x32, the test suite's size), scored with
          ``compare.object_nrmse`` on the illuminated region. Check: the note's §5.4 tolerances, ePIE ≤ 0.06,
          rPIE ≤ 0.02, DM ≤ 0.1. Reference: ptychi ``RPIEOptions`` on the CPU (``default_device=CPU``,
          float32, batch_size 1 = sequential rPIE like ours, α = 0.1, probe and positions fixed), called as
          note §5.5 says: patterns fftshifted (DC at the centre), position origin SPECIFIED at [0.5, 0.5] and
          positions = top-left + m/2 - 1. Timed: ``task.run()`` once (its build and import are printed apart).

What is installed, and where (nothing goes into .venv, nothing into pyproject.toml):
    the first run that needs a reference creates the virtualenv ``<cache>/science-refs`` (--cache, default
    ``$XDG_CACHE_HOME/beamlink/bench`` or ``~/.cache/beamlink/bench``) with ``.venv/bin/python -m venv``, and
    writes ``_beamlink_main_venv.pth`` into its site-packages naming .venv's site-packages, so that torch
    (the CPU build), NumPy, SciPy and h5py are .venv's own, read-only, and its own packages shadow them. Then,
    with ``<cache>/science-refs/constraints.txt`` pinning torch to .venv's version (``torch==2.13.0``) and
    pip's ``--disable-pip-version-check --quiet`` (pip's own configuration, indexes included, applies):

        <cache>/science-refs/bin/python -m pip install -c constraints.txt imaged11==2.1.3
        <cache>/science-refs/bin/python -m pip install -c constraints.txt --no-deps ptychi==2.2.0
        <cache>/science-refs/bin/python -m pip install -c constraints.txt h5py 'numpy>=2.1' pandas \
            'pydantic>=2,<3' scikit-image scikit-learn scipy tqdm 'matplotlib>=3.10.6'

    (about 1.5 min and 0.7 GB, mostly ImageD11's dependencies: numba, llvmlite, dask, orix, scikit-image,
    pandas). A marker file per package (``<cache>/science-refs/<name>.installed``) skips the install next
    time; --reinstall-references deletes the virtualenv first. The last command is ptychi's own requirement
    list less torch (from .venv), mypy/pytest/ruff (development tools it lists but never imports) and
    torchvision: the only torchvision for torch 2.13.0 on PyPI (0.28.0) is a CUDA build whose compiled ops
    need libtorch_cuda.so, so ``import torchvision`` fails against the CPU torch ("operator torchvision::nms
    does not exist"), and a CPU torchvision is not on PyPI. ptychi 2.2.0 imports torchvision in one place,
    ``ptychi/utils.py`` (``from torchvision.transforms import GaussianBlur``), used only to blur a random
    initial object; the benchmark passes its initial object, so the reference interpreter puts a stub
    ``torchvision`` module in ``sys.modules`` before importing ptychi (its GaussianBlur raises if called) and
    prints that it did. If a reference cannot be installed or imported (no network, a build failure), the
    benchmark prints why and carries on with our numbers; --no-references never installs anything.

Threads: NumPy/SciPy as configured; torch (BraggNN, ptychi) uses its default unless --threads is given.
Timings on a shared 2-core machine vary a lot with load; compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import inspect
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from beamlink.apps.braggnn.evaluate import error_summary
from beamlink.apps.braggnn.fit import fit_centres
from beamlink.apps.braggnn.synthetic import make_patches
from beamlink.apps.braggnn.training import predict, train
from beamlink.apps.hedm.evaluate import PeakMatch, match_peaks
from beamlink.apps.hedm.framewise import merge_across_omega, search_frames
from beamlink.apps.hedm.peaksearch import search_stack
from beamlink.apps.hedm.pvfit import refine_peaks
from beamlink.apps.hedm.synthetic import make_blob_stack
from beamlink.apps.ptycho.compare import illumination_mask, object_nrmse
from beamlink.apps.ptycho.reconstruct import dm, epie, rpie
from beamlink.apps.ptycho.synthetic import make_scan
from beamlink.apps.ssx.classify import HitFinderParams, find_spots_run
from beamlink.apps.ssx.scoring import match_spots
from beamlink.apps.ssx.spotfind import SpotFinderParams
from beamlink.apps.ssx.synthetic import StillConfig, StillTruth, make_stills

KERNELS = ("ssx", "hedm", "braggnn", "ptycho")
SSX_SPOTS = (60, 60, 60, 60, 5, 5, 0, 0)  # spots per still: 4 hits, 2 near-misses, 2 blanks (hit rule: >= 16)
SSX_PHOTONS = (120.0, 2000.0)  # every spot is >= 120 photons: the check covers all of them
SSX_SIGMAS = 5.0  # ImageD11's global threshold: median + 5·sqrt(median) of each still
HEDM_BLOCK = 32
PTYCHO_TOLERANCE = {"ePIE": 0.06, "rPIE": 0.02, "DM": 0.1}  # reference note §5.4 (30 it; DM 60 it)
RPIE_ALPHA = 0.1

T = TypeVar("T")


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "beamlink" / "bench"


def _best(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    """Best wall time of ``repeat`` runs (at least one) and the last result."""
    best = float("inf")
    result: T | None = None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _ratio(reference_s: float | None, ours_s: float) -> str:
    return f"{reference_s / ours_s:.2f}x" if reference_s is not None else "-"


def _row(label: str, seconds: float, rates: str, quality: str, ratio: str = "") -> None:
    print(f"    {label:<44}{seconds:>8.3f}  {rates:<20}{ratio:>10}  {quality}")


def _header(rates: Sequence[str], ratio: str) -> None:
    """The column titles; ``rates`` are right-aligned over 8-character numbers two spaces apart."""
    titles = "  ".join(f"{title:>8}" for title in rates)
    print(f"    {'kernel':<44}{'best s':>8}  {titles:<20}{ratio:>10}  quality")


# --- the reference interpreter: these functions run there, not here ----------------------------------------
# They use only the standard library, NumPy and the reference packages (imported inside them: those exist
# in the reference interpreter only). ``reference_script()`` copies their source into the script it runs.


def _stub_torchvision() -> str:
    """Let ptychi import where no usable torchvision exists (module docstring); says what it did."""
    try:
        import torchvision  # type: ignore[import-not-found, unused-ignore]

        return f"torchvision {torchvision.__version__}"
    except Exception as exc:  # absent: ImportError; a CUDA-only build: RuntimeError or OSError
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]

    class GaussianBlur:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError(
                "torchvision is a stub here: ptychi asked for GaussianBlur (random initial objects), "
                "which this benchmark does not use"
            )

    package = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    setattr(transforms, "GaussianBlur", GaussianBlur)  # noqa: B010  (ModuleType has no such attribute)
    setattr(package, "transforms", transforms)  # noqa: B010
    sys.modules["torchvision"] = package
    sys.modules["torchvision.transforms"] = transforms
    return f"torchvision stubbed ({reason})"


def _ref_ssx_imaged11(
    arrays: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """ImageD11 connected pixels on each still: global threshold, 4-connected blobs, moments, size filter."""
    started = time.perf_counter()
    from ImageD11 import cImageD11  # type: ignore[import-not-found, unused-ignore]

    import_s = time.perf_counter() - started
    stack = arrays["stack"]
    sigmas, min_size = float(params["sigmas"]), int(params["min_spot_size"])

    def once() -> tuple[NDArray[Any], NDArray[Any]]:
        centroids, counts = [], []
        for image in stack:
            data = image.astype(np.float32)
            median = float(np.median(data))
            threshold = median + sigmas * np.sqrt(max(median, 1.0))
            labels = np.zeros(data.shape, dtype=np.int32)
            n = cImageD11.connectedpixels(data, labels, threshold, 0, 0)  # verbose 0, con8 0: 4-connected
            if n == 0:
                counts.append(0)
                continue
            props = cImageD11.blobproperties(data, labels, n, 0.0)
            cImageD11.blob_moments(props)
            keep = props[:, cImageD11.s_1] >= min_size
            # s_raw/f_raw are intensity-weighted pixel indices; DIALS centres pixels at +0.5.
            centroids.append(
                np.column_stack([props[keep, cImageD11.s_raw], props[keep, cImageD11.f_raw]]) + 0.5
            )
            counts.append(int(keep.sum()))
        joined = np.concatenate(centroids) if centroids else np.empty((0, 2))
        return joined, np.array(counts, dtype=np.int64)

    best = float("inf")
    for _ in range(max(1, int(params["repeat"]))):
        begun = time.perf_counter()
        centroid_yx, counts = once()
        best = min(best, time.perf_counter() - begun)
    info = {
        "seconds": best,
        "runs": max(1, int(params["repeat"])),
        "import_s": import_s,
        "openmp_threads": int(cImageD11.cimaged11_omp_get_max_threads()),
    }
    return {"centroid_yx": centroid_yx, "counts": counts}, info


def _ref_hedm_imaged11(
    arrays: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """ImageD11 labelimage over the stack: per-frame connected pixels, merged across frames by overlap."""
    started = time.perf_counter()
    from ImageD11 import labelimage  # type: ignore[import-not-found, unused-ignore]

    import_s = time.perf_counter() - started
    stack = arrays["stack"]
    dark, threshold = np.float32(params["dark"]), float(params["threshold"])

    def once() -> str:
        out = io.StringIO()
        search = labelimage.labelimage(stack.shape[1:], fileout=out, sptfile=io.StringIO())
        for f in range(stack.shape[0]):
            search.peaksearch(stack[f].astype(np.float32) - dark, threshold, float(f))  # omega = frame
            search.mergelast()
        search.finalise()
        return out.getvalue()

    best = float("inf")
    for _ in range(max(1, int(params["repeat"]))):
        begun = time.perf_counter()
        text = once()
        best = min(best, time.perf_counter() - begun)
    titles = labelimage.labelimage.titles.split()[1:]
    column = {name: i for i, name in enumerate(titles)}
    rows = np.loadtxt(io.StringIO(text), comments="#", ndmin=2)
    rows = rows.reshape(-1, len(titles))
    results = {
        "frame": rows[:, column["omega"]],
        "y": rows[:, column["s_raw"]],
        "z": rows[:, column["f_raw"]],
        "n_px": rows[:, column["Number_of_pixels"]],
    }
    return results, {"seconds": best, "runs": max(1, int(params["repeat"])), "import_s": import_s}


def _ref_ptycho_ptychi(
    arrays: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """ptychi rPIE on the CPU with the known probe, as the reference note (§5.5) calls it."""
    started = time.perf_counter()
    torchvision = _stub_torchvision()
    import ptychi.api as api  # type: ignore[import-not-found, unused-ignore]
    import torch
    from ptychi.api.task import PtychographyTask  # type: ignore[import-not-found, unused-ignore]

    import_s = time.perf_counter() - started
    if params.get("threads"):
        torch.set_num_threads(int(params["threads"]))
    intensities, positions, probe = arrays["intensities"], arrays["positions"], arrays["probe"]
    n0, n1 = (int(v) for v in arrays["object_shape"])
    m0, m1 = probe.shape
    options = api.RPIEOptions()
    options.object_options.alpha = float(params["alpha"])
    # Integer top-left corners: origin [0.5, 0.5] and positions top-left + m/2 - 1 (note §5.5).
    options.object_options.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    options.object_options.position_origin_coords = np.array([0.5, 0.5])
    options.probe_options.optimizable = False
    options.probe_position_options.optimizable = False
    options.reconstructor_options.num_epochs = int(params["n_iter"])
    options.reconstructor_options.batch_size = 1
    options.reconstructor_options.default_device = api.Devices.CPU
    options.reconstructor_options.random_seed = int(params["seed"])
    begun = time.perf_counter()
    task = PtychographyTask(
        options,
        diffraction_data=np.fft.fftshift(intensities, axes=(-2, -1)).astype(np.float32),
        object_data=np.ones((1, n0, n1), dtype=np.complex64),
        probe_data=probe[None, None].astype(np.complex64),
        probe_position_y_px=(positions[:, 0] + m0 / 2 - 1).astype(np.float32),
        probe_position_x_px=(positions[:, 1] + m1 / 2 - 1).astype(np.float32),
    )
    build_s = time.perf_counter() - begun
    begun = time.perf_counter()
    task.run()
    seconds = time.perf_counter() - begun
    obj = np.asarray(task.get_data_to_cpu("object", as_numpy=True)[0])
    info = {
        "seconds": seconds,
        "runs": 1,
        "import_s": import_s,
        "build_s": build_s,
        "torch": str(torch.__version__),
        "threads": int(torch.get_num_threads()),
        "torchvision": torchvision,
    }
    return {"object": obj}, info


def _runner_main(argv: list[str]) -> None:
    """``script KIND IN.npz OUT.npz`` or ``script import PACKAGE``; prints a ``BENCH-RESULT {json}`` line."""
    kind = argv[1]
    if kind == "import":
        package = argv[2]
        if package == "ptychi":
            note = _stub_torchvision()
            import ptychi.api  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
        else:
            note = ""
            import ImageD11.cImageD11  # type: ignore[import-not-found, unused-ignore]
            import ImageD11.labelimage  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
        version = importlib.metadata.version(package)
        print("BENCH-RESULT " + json.dumps({"version": version, "note": note}), flush=True)
        return
    runners = {"ssx": _ref_ssx_imaged11, "hedm": _ref_hedm_imaged11, "ptycho": _ref_ptycho_ptychi}
    with np.load(argv[2]) as data:
        arrays = {name: data[name] for name in data.files}
    params = json.loads(str(arrays.pop("params_json")))
    results, info = runners[kind](arrays, params)
    outputs: dict[str, Any] = dict(results)
    np.savez(argv[3], **outputs)
    print("BENCH-RESULT " + json.dumps(info), flush=True)


_RUNNER_FUNCTIONS = (
    _stub_torchvision,
    _ref_ssx_imaged11,
    _ref_hedm_imaged11,
    _ref_ptycho_ptychi,
    _runner_main,
)


def reference_script() -> str:
    """The script the reference interpreter runs: the functions above, verbatim, and their imports."""
    head = (
        "from __future__ import annotations\n\nimport importlib.metadata\nimport io\nimport json\n"
        "import sys\nimport time\nimport types\nfrom typing import Any\n\nimport numpy as np\n"
        "from numpy.typing import NDArray\n\n\n"
    )
    body = "\n\n".join(inspect.getsource(function) for function in _RUNNER_FUNCTIONS)
    return head + body + '\n\nif __name__ == "__main__":\n    _runner_main(sys.argv)\n'


# --- installing the references -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A pip-installable reference: what to install, how, and what to import to check it."""

    title: str
    requirement: str
    no_deps: bool = False
    extra: tuple[str, ...] = ()  # installed (with their dependencies) after the requirement


# ptychi's runtime requirements less torch, torchvision and its development tools (module docstring).
PTYCHI_DEPS = (
    "h5py",
    "numpy>=2.1",
    "pandas",
    "pydantic>=2,<3",
    "scikit-image",
    "scikit-learn",
    "scipy",
    "tqdm",
    "matplotlib>=3.10.6",
)
REFERENCES = {
    "imaged11": Reference("ImageD11", "imaged11==2.1.3"),
    "ptychi": Reference("ptychi", "ptychi==2.2.0", no_deps=True, extra=PTYCHI_DEPS),
}


@dataclass(frozen=True)
class RefRun:
    """A reference's outcome on one input: its arrays and its facts (seconds, runs, import_s, ...)."""

    arrays: dict[str, NDArray[Any]]
    info: dict[str, Any]


class References:
    """The cache virtualenv holding the references, filled on first use, one package at a time."""

    def __init__(self, cache: Path, *, enabled: bool, reinstall: bool) -> None:
        self.venv = cache / "science-refs"
        self.enabled = enabled
        self.reinstall = reinstall
        self.status: dict[str, tuple[bool, str]] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="beamlink-bench-science-")
        self.script = Path(self._tmp.name) / "science_refs_runner.py"
        self.script.write_text(reference_script())

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def close(self) -> None:
        self._tmp.cleanup()

    def available(self, package: str) -> tuple[bool, str]:
        """(usable, what it is or why not); installs ``package`` into the virtualenv the first time."""
        if package not in self.status:
            self.status[package] = self._prepare(package) if self.enabled else (False, "--no-references")
        return self.status[package]

    def _prepare(self, package: str) -> tuple[bool, str]:
        ref = REFERENCES[package]
        if package == "ptychi" and importlib.util.find_spec("torch") is None:
            return False, "torch is not installed in .venv (pip install 'beamlink[braggnn]'), ptychi needs it"
        try:
            self._ensure_venv()
        except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
            return False, f"no virtualenv at {self.venv}: {exc}"
        marker = self.venv / f"{package}.installed"
        if not (marker.is_file() and marker.read_text().strip() == ref.requirement):
            commands = [self._pip(ref.requirement, no_deps=ref.no_deps)]
            if ref.extra:
                commands.append(self._pip(*ref.extra))
            for command in commands:
                shown = " ".join(command[command.index("install") :])
                print(f"  installing {ref.title} into {self.venv} (once; ~1-2 min): pip {shown}", flush=True)
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
                    errors = [line for line in lines if line.startswith("ERROR")] or lines
                    return False, f"pip install failed: {errors[-1]}"
            marker.write_text(ref.requirement + "\n")
        done = subprocess.run(
            [str(self.python), str(self.script), "import", package],
            capture_output=True,
            text=True,
            env=_reference_env(),
        )
        found = _result_line(done.stdout)
        if done.returncode or found is None:
            marker.unlink(missing_ok=True)
            return False, f"installed but does not import: {_last_line(done.stderr)}"
        note = f"; {found['note']}" if found["note"] else ""
        return True, f"{ref.title} {found['version']} in {self.venv}{note}"

    def _ensure_venv(self) -> None:
        if self.reinstall and self.venv.exists():
            print(f"  deleting {self.venv} (--reinstall-references)", flush=True)
            shutil.rmtree(self.venv)
            self.reinstall = False
        if not self.python.is_file():
            print(f"  creating the reference virtualenv {self.venv}", flush=True)
            subprocess.run(
                [sys.executable, "-m", "venv", str(self.venv)], check=True, capture_output=True, text=True
            )
        purelib = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # .venv's packages (torch, NumPy, SciPy, ...) after the virtualenv's own: read, never written.
        Path(purelib, "_beamlink_main_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        try:
            torch = importlib.metadata.version("torch").split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            torch = None
        pins = f"torch=={torch}\n" if torch else ""
        (self.venv / "constraints.txt").write_text(pins)

    def _pip(self, *requirements: str, no_deps: bool = False) -> list[str]:
        command = [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
        command += ["-c", str(self.venv / "constraints.txt")]
        return command + (["--no-deps"] if no_deps else []) + list(requirements)

    def run(self, kind: str, arrays: Mapping[str, Any], params: Mapping[str, Any]) -> RefRun | str:
        """Run reference ``kind`` on ``arrays``; returns its outcome, or why it failed."""
        with tempfile.TemporaryDirectory(prefix="beamlink-bench-science-") as tmp:
            source, target = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
            np.savez(source, params_json=np.array(json.dumps(dict(params))), **arrays)
            try:
                done = subprocess.run(
                    [str(self.python), str(self.script), kind, str(source), str(target)],
                    capture_output=True,
                    text=True,
                    env=_reference_env(),
                    timeout=900,
                )
            except subprocess.TimeoutExpired:
                return "ran past 900 s"
            info = _result_line(done.stdout)
            if done.returncode or info is None or not target.is_file():
                return f"failed (exit {done.returncode}): {_last_line(done.stderr)}"
            with np.load(target) as data:
                return RefRun(arrays={name: data[name] for name in data.files}, info=info)


def _reference_env() -> dict[str, str]:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    return env


def _result_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("BENCH-RESULT "):
            found: dict[str, Any] = json.loads(line.removeprefix("BENCH-RESULT "))
            return found
    return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# --- (ssx) spot finding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpotScore:
    recall: float
    precision: float
    mean_error: float
    p95_error: float
    n_found: int
    hits_right: int

    def text(self, n_frames: int) -> str:
        return (
            f"recall {self.recall:.3f}  prec {self.precision:.3f}  "
            f"err {self.mean_error:.3f}/{self.p95_error:.3f}  hits {self.hits_right}/{n_frames}"
        )


def score_spots(
    found: Sequence[NDArray[np.float64]], truths: Sequence[StillTruth], hits: NDArray[np.bool_]
) -> SpotScore:
    """Recall, precision and centroid error over all stills (spots matched per still within 2 px)."""
    matches = [match_spots(f, t.centers_yx) for f, t in zip(found, truths, strict=True)]
    n_true = sum(m.n_true for m in matches)
    n_found = sum(m.n_found for m in matches)
    n_matched = sum(m.n_matched for m in matches)
    errors = np.concatenate([m.errors_px for m in matches])
    true_hits = np.array([t.n_spots >= HitFinderParams().min_spots for t in truths])
    return SpotScore(
        recall=n_matched / n_true if n_true else 1.0,
        precision=n_matched / n_found if n_found else 1.0,
        mean_error=float(errors.mean()) if errors.size else float("nan"),
        p95_error=float(np.percentile(errors, 95)) if errors.size else float("nan"),
        n_found=n_found,
        hits_right=int(np.count_nonzero(hits == true_hits)),
    )


def bench_ssx(args: argparse.Namespace, refs: References) -> None:
    size = args.ssx_size
    config = StillConfig(shape=(size, size), photons=SSX_PHOTONS)
    stack, truths, mask = make_stills(SSX_SPOTS, config=config, seed=args.seed)
    n_frames = stack.shape[0]
    n_true = sum(t.n_spots for t in truths)
    mpx = n_frames * size * size / 1e6
    print(
        f"(ssx) SSX spot finding: {n_frames} stills of {size}x{size} px "
        f"({SSX_SPOTS.count(60)} with 60 spots, {SSX_SPOTS.count(5)} with 5, {SSX_SPOTS.count(0)} blank; "
        f"{n_true} spots\n      of {SSX_PHOTONS[0]:.0f}-{SSX_PHOTONS[1]:.0f} photons), "
        f"background {config.background:g} photons/px + solvent ring; seed {args.seed}; "
        f"best of {args.repeat}; centroid error mean/p95 in px"
    )
    seconds, run = _best(args.repeat, lambda: find_spots_run(stack, mask))
    ours = score_spots([f.spots.centroid_yx for f in run.frames], truths, run.summary.hits)

    usable, status = refs.available("imaged11")
    print(f"    reference: {status if usable else 'ImageD11 not run: ' + status}")
    theirs: SpotScore | None = None
    ref_s: float | None = None
    if usable:
        params = {"sigmas": SSX_SIGMAS, "min_spot_size": SpotFinderParams().min_spot_size}
        outcome = refs.run("ssx", {"stack": stack}, {**params, "repeat": args.repeat})
        if isinstance(outcome, str):
            print(f"    ImageD11 {outcome}")
        else:
            counts = outcome.arrays["counts"]
            found = np.split(outcome.arrays["centroid_yx"], np.cumsum(counts)[:-1])
            theirs = score_spots(found, truths, counts >= HitFinderParams().min_spots)
            ref_s = float(outcome.info["seconds"])
    _header(["frames/s", "Mpx/s"], "vs ImageD11")
    _row(
        "beamlink find_spots_run (DIALS dispersion)",
        seconds,
        f"{n_frames / seconds:8.2f}  {mpx / seconds:8.2f}",
        ours.text(n_frames),
        _ratio(ref_s, seconds),
    )
    if theirs is not None and ref_s is not None:
        _row(
            "ImageD11 connectedpixels (global threshold)",
            ref_s,
            f"{n_frames / ref_s:8.2f}  {mpx / ref_s:8.2f}",
            theirs.text(n_frames),
            "1.00x",
        )
    ok = ours.recall >= 0.95 and ours.precision >= 0.95
    print(
        f"    check: recall and precision >= 0.95 for spots >= 120 photons: {_met(ok)} "
        f"(recall {ours.recall:.3f}, precision {ours.precision:.3f}); hit/miss {ours.hits_right}/{n_frames}"
    )


# --- (hedm) peak search -------------------------------------------------------------------------------------


def _peak_text(n_found: int, match: PeakMatch) -> str:
    return (
        f"{n_found:4d} pk  recall {match.recall:.3f}  prec {match.precision:.3f}  "
        f"err {match.mean_error:.3f}/{match.p95_error:.3f}"
    )


def bench_hedm(args: argparse.Namespace, refs: References) -> None:
    n_frames, size, n_peaks = args.hedm_frames, args.hedm_size, args.hedm_peaks
    stack, truth = make_blob_stack(n_frames=n_frames, shape=(size, size), n_peaks=n_peaks, seed=args.seed)
    mvox = stack.size / 1e6
    print(
        f"\n(hedm) HEDM peak search: blob stack {n_frames} frames x {size}x{size} px (uint16, dark "
        f"{truth.dark:g}, background {truth.background:g}), {n_peaks} peaks;\n       threshold "
        f"{truth.threshold:.1f} above dark; seed {args.seed}; best of {args.repeat}; centroid error "
        "mean/p95 in (frame, y, z) px, matched within 1.5"
    )

    def search(block_size: int | None) -> list[Any]:
        return list(
            search_stack(
                stack,
                threshold=truth.threshold,
                dark=truth.dark,
                block_size=block_size,
                omega0=truth.omega0,
                domega=truth.domega,
            )
        )

    whole_s, whole = _best(args.repeat, lambda: search(None))
    blocks_s, blocks = _best(args.repeat, lambda: search(HEDM_BLOCK))

    def framewise() -> list[Any]:
        regions = search_frames(stack, threshold=truth.threshold, dark=truth.dark)
        return list(merge_across_omega(regions, omega0=truth.omega0, domega=truth.domega))

    frames_s, frames = _best(args.repeat, framewise)
    fit_s, fitted = _best(args.repeat, lambda: refine_peaks(stack, whole, dark=truth.dark))
    whole_match = match_peaks(whole, truth.peaks)

    usable, status = refs.available("imaged11")
    print(f"    reference: {status if usable else 'ImageD11 not run: ' + status}")
    ref: tuple[float, PeakMatch, int, PeakMatch, int] | None = None
    if usable:
        params = {"dark": truth.dark, "threshold": truth.threshold, "repeat": args.repeat}
        outcome = refs.run("hedm", {"stack": stack}, params)
        if isinstance(outcome, str):
            print(f"    ImageD11 {outcome}")
        else:
            a = outcome.arrays
            blobs = [
                {"frame": float(f), "y": float(y), "z": float(z)}
                for f, y, z in zip(a["frame"], a["y"], a["z"], strict=True)
            ]
            big = [b for b, n in zip(blobs, a["n_px"], strict=True) if n >= 4]
            ref = (
                float(outcome.info["seconds"]),
                match_peaks(blobs, truth.peaks),
                len(blobs),
                match_peaks(big, truth.peaks),
                len(big),
            )
    ref_s = ref[0] if ref else None
    _header(["frames/s", "Mvoxel/s"], "vs ImageD11")
    rows = [
        ("beamlink search_stack, one block (3-D)", whole_s, whole),
        (f"beamlink search_stack, blocks of {HEDM_BLOCK} frames", blocks_s, blocks),
        ("beamlink framewise (2-D + merge across ω)", frames_s, frames),
    ]
    for label, seconds, peaks in rows:
        rates = f"{n_frames / seconds:8.1f}  {mvox / seconds:8.1f}"
        quality = _peak_text(len(peaks), match_peaks(peaks, truth.peaks))
        _row(label, seconds, rates, quality, _ratio(ref_s, seconds))
    fit_rate = f"{len(fitted) / fit_s:8.1f}  peaks/s"
    _row(
        "beamlink pvfit.refine_peaks (pseudo-Voigt)",
        fit_s,
        fit_rate,
        _peak_text(len(fitted), match_peaks(fitted, truth.peaks)),
    )
    if ref is not None:
        seconds, all_match, n_all, big_match, n_big = ref
        rates = f"{n_frames / seconds:8.1f}  {mvox / seconds:8.1f}"
        _row("ImageD11 labelimage, all blobs", seconds, rates, _peak_text(n_all, all_match), "1.00x")
        _row("ImageD11 labelimage, blobs >= 4 px", seconds, rates, _peak_text(n_big, big_match), "1.00x")
    ok = whole_match.recall >= 0.98 and whole_match.mean_error <= 0.1
    print(
        f"    check: recall >= 0.98 and centroid error <= 0.1 px (search_stack): {_met(ok)} "
        f"(recall {whole_match.recall:.3f}, mean error {whole_match.mean_error:.3f} px)"
    )


# --- (braggnn) centre regression ----------------------------------------------------------------------------


def bench_braggnn(args: argparse.Namespace, refs: References) -> None:
    n_train, epochs, n_test = args.braggnn_patches, args.braggnn_epochs, args.braggnn_test
    print(
        f"\n(braggnn) BraggNN: train on {n_train:,} synthetic 11x11 pseudo-Voigt patches x {epochs} epochs "
        f"(Adam lr 2e-3 cosine, batch 256,\n          seed {args.seed}); {n_test:,} held-out patches "
        "scored by the network and by the least-squares fit; no pip reference\n          exists (the fit "
        "is the baseline); centre error mean/p95 in px"
    )
    if importlib.util.find_spec("torch") is None:
        print("    skipped: torch is not installed (pip install 'beamlink[braggnn]')")
        return
    patches, centres = make_patches(n_train, seed=100 + args.seed)
    held_out, truth = make_patches(n_test, seed=101 + args.seed)
    started = time.perf_counter()
    model = train(
        patches,
        centres,
        epochs=epochs,
        batch_size=256,
        lr=2e-3,
        schedule="cosine",
        seed=args.seed,
        threads=args.threads,
    )
    train_s = time.perf_counter() - started
    predict(model, held_out[:256], threads=args.threads)  # warm-up: torch's thread pool and kernels
    infer_s, predicted = _best(args.repeat, lambda: predict(model, held_out, threads=args.threads))
    fit_s, fitted = _best(1, lambda: fit_centres(held_out))
    nn, lsq = error_summary(predicted, truth), error_summary(fitted, truth)
    print(f"    torch {model.info['torch_version']}, {model.info['threads']} threads, {model.info['device']}")
    _header(["patches/s"], "vs fit")
    _row(
        f"beamlink train ({n_train:,} x {epochs} epochs, 1 run)",
        train_s,
        f"{n_train * epochs / train_s:9,.0f}",
        f"final loss {model.history[-1]:.2e}",
    )
    _row(
        f"beamlink predict ({n_test:,} patches)",
        infer_s,
        f"{n_test / infer_s:9,.0f}",
        f"err {nn['mean']:.3f}/{nn['p95']:.3f}",
        _ratio(fit_s, infer_s),
    )
    _row(
        "beamlink fit_centres least squares (1 run)",
        fit_s,
        f"{n_test / fit_s:9,.0f}",
        f"err {lsq['mean']:.3f}/{lsq['p95']:.3f}",
        "1.00x",
    )
    ok = nn["mean"] <= 0.1 and infer_s < fit_s
    print(
        f"    check: mean centre error <= 0.1 px and inference faster than fitting: {_met(ok)} "
        f"({nn['mean']:.3f} px; {fit_s / infer_s:.0f}x the fit's patches/s)"
    )


# --- (ptycho) reconstruction --------------------------------------------------------------------------------


def bench_ptycho(args: argparse.Namespace, refs: References) -> None:
    data, truth = make_scan(n=args.ptycho_n, seed=args.seed)
    n_views, m0, m1 = data.intensities.shape
    iters = {"ePIE": args.ptycho_iter, "rPIE": args.ptycho_iter, "DM": 2 * args.ptycho_iter}
    print(
        "\n(ptycho) far-field ptychography, known probe: object "
        f"{data.object_shape[0]}x{data.object_shape[1]}, {n_views} views of {m0}x{m1}, noise-free; "
        f"seed {args.seed}; best of {args.repeat};\n"
        "         NRMSE on the illuminated region after the global complex scale (tolerance: note §5.4), "
        "E_data last/first"
    )
    mask = illumination_mask(truth.probe, data.positions, data.object_shape)
    shape = data.object_shape
    engines: dict[str, Callable[[], Any]] = {
        "ePIE": lambda: epie(
            data.intensities, data.positions, truth.probe, object_shape=shape, n_iter=iters["ePIE"]
        ),
        "rPIE": lambda: rpie(
            data.intensities,
            data.positions,
            truth.probe,
            object_shape=shape,
            n_iter=iters["rPIE"],
            alpha=RPIE_ALPHA,
        ),
        "DM": lambda: dm(
            data.intensities, data.positions, truth.probe, object_shape=shape, n_iter=iters["DM"]
        ),
    }
    measured = {}
    for name, engine in engines.items():
        seconds, result = _best(args.repeat, engine)
        drop = float(result.errors[-1] / result.errors[0])
        measured[name] = (seconds, object_nrmse(truth.object, result.object, mask), drop)

    usable, status = refs.available("ptychi")
    print(f"    reference: {status if usable else 'ptychi not run: ' + status}")
    ref: tuple[float, float, dict[str, Any]] | None = None
    if usable:
        params = {"alpha": RPIE_ALPHA, "n_iter": iters["rPIE"], "seed": args.seed, "threads": args.threads}
        arrays = {
            "intensities": data.intensities,
            "positions": data.positions,
            "probe": truth.probe,
            "object_shape": np.array(data.object_shape),
        }
        outcome = refs.run("ptycho", arrays, params)
        if isinstance(outcome, str):
            print(f"    ptychi {outcome}")
        else:
            nrmse = object_nrmse(truth.object, outcome.arrays["object"].astype(np.complex128), mask)
            ref = (float(outcome.info["seconds"]), nrmse, outcome.info)
    ref_s = ref[0] if ref else None
    _header(["it/s", "ms/it"], "vs ptychi")
    for name, (seconds, nrmse, drop) in measured.items():
        n_iter = iters[name]
        _row(
            f"beamlink {name} ({n_iter} it)",
            seconds,
            f"{n_iter / seconds:8.1f}  {1e3 * seconds / n_iter:8.1f}",
            f"NRMSE {nrmse:.4f} (<= {PTYCHO_TOLERANCE[name]:g})  E_data x{drop:.1e}",
            _ratio(ref_s, seconds) if name == "rPIE" else "",
        )
    if ref is not None:
        seconds, nrmse, info = ref
        n_iter = iters["rPIE"]
        _row(
            f"ptychi RPIE ({n_iter} epochs, batch 1, 1 run)",
            seconds,
            f"{n_iter / seconds:8.1f}  {1e3 * seconds / n_iter:8.1f}",
            f"NRMSE {nrmse:.4f}  float32, CPU",
            "1.00x",
        )
        print(
            f"      ptychi: torch {info['torch']}, {info['threads']} threads, {info['torchvision']}; "
            f"import {info['import_s']:.1f} s and task build {info['build_s']:.1f} s not in its time"
        )
    ok = all(measured[name][1] <= PTYCHO_TOLERANCE[name] for name in measured)
    nrmse_text = ", ".join(f"{name} {measured[name][1]:.4f}" for name in measured)
    print(
        "    check: NRMSE within the note's tolerances (ePIE 0.06, rPIE 0.02, DM 0.1): "
        f"{_met(ok)} ({nrmse_text})"
    )
    if ref is not None:
        print(
            f"    rPIE NRMSE on the same input: beamlink {measured['rPIE'][1]:.4f}, ptychi {ref[1]:.4f} "
            "(the note, at n = 192: both 0.0095)"
        )


# --- entry point --------------------------------------------------------------------------------------------


def _versions() -> str:
    parts = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for name in ("scipy", "torch"):
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} absent")
    return ", ".join(parts)


def _kernels(value: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [k for k in chosen if k not in KERNELS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(KERNELS)}; got {value!r}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", type=_kernels, default=KERNELS, help="comma-separated: ssx,hedm,braggnn,ptycho"
    )
    parser.add_argument("--no-references", action="store_true", help="time beamlink only; install nothing")
    parser.add_argument("--reinstall-references", action="store_true", help="rebuild <cache>/science-refs")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for the timings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where science-refs lives")
    parser.add_argument("--ssx-size", type=int, default=1024, help="still height = width, px")
    parser.add_argument("--hedm-frames", type=int, default=120)
    parser.add_argument("--hedm-size", type=int, default=512, help="frame height = width, px")
    parser.add_argument("--hedm-peaks", type=int, default=150)
    parser.add_argument("--braggnn-patches", type=int, default=10_000, help="training patches")
    parser.add_argument("--braggnn-epochs", type=int, default=5)
    parser.add_argument("--braggnn-test", type=int, default=1_000, help="held-out patches")
    parser.add_argument("--ptycho-n", type=int, default=64, help="object size (n = 96: 289 views)")
    parser.add_argument("--ptycho-iter", type=int, default=30, help="ePIE/rPIE iterations (DM: twice)")
    args = parser.parse_args()
    print(f"beamlink science kernels: {os.cpu_count()} CPU cores, {_versions()}")
    refs = References(args.cache, enabled=not args.no_references, reinstall=args.reinstall_references)
    benches = {"ssx": bench_ssx, "hedm": bench_hedm, "braggnn": bench_braggnn, "ptycho": bench_ptycho}
    started = time.perf_counter()
    try:
        for kernel in KERNELS:
            if kernel in args.only:
                benches[kernel](args, refs)
    finally:
        refs.close()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
