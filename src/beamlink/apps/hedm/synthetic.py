# ruff: noqa: RUF002  (Greek letters in the equations are meant)
"""Seeded synthetic far-field stacks with their ground truth, at two levels (reference note §3.3).

- :func:`make_blob_stack` — blob level: 3-D Gaussians at random (frame, y, z), kept apart so each is one blob.
- :func:`make_grain_stack` — grain level: random cubic grains, spots placed by the forward model of
  :mod:`~beamlink.apps.hedm.geometry`, each drawn as a 3-D Gaussian.

Each spot of peak density A is integrated over every voxel (a frame integrates the rocking curve over its ω
step, a pixel over its area), so the expected counts in voxel (f, y, z) are

    A · Π_axes √(2π)·σ·[Φ((i + ½ - c)/σ) - Φ((i - ½ - c)/σ)]

(Φ the normal CDF) and the spot's total is exactly A·(2π)^{3/2}·σ_f·σ_y·σ_z. The frames are then
``Poisson(background + signal) + dark`` as uint16, like a detector readout.

Both return ``(stack, truth)``; the recommended threshold is ``background + 6·√background`` above the dark.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from beamlink.apps._arrays import integer, real_number
from beamlink.apps.hedm.geometry import (
    FarFieldGeometry,
    cubic_reflections,
    diffraction_spots,
    random_orientations,
    ring_radii_px,
)
from beamlink.apps.hedm.records import TruePeak
from beamlink.errors import InvalidInput

__all__ = [
    "SMALL_GEOMETRY",
    "SyntheticTruth",
    "add_noise",
    "make_blob_stack",
    "make_grain_stack",
    "render_peaks",
]

# A small detector for tests: the MIDAS Au set-up with 2 mm pixels, so the first five rings (47-96 px) fit
# on 208² pixels.
SMALL_GEOMETRY = FarFieldGeometry(
    wavelength_a=0.22291, distance_mm=1000.0, pixel_mm=2.0, shape=(208, 208), beam_center=(103.5, 103.5)
)

# A Gaussian rendered out to 5 sigma leaves < 3e-7 of its mass outside the box.
_REACH = 5.0


@dataclass(frozen=True)
class SyntheticTruth:
    """What a generator drew: the spots, the detector offsets, and the scan's ω axis.

    ``threshold`` is the recommended search threshold above the dark (background + 6·√background);
    ``ring_radii_px`` is filled for grain-level stacks.
    """

    peaks: list[TruePeak]
    dark: float
    background: float
    threshold: float
    omega0: float
    domega: float
    ring_radii_px: tuple[float, ...] = field(default=())


def render_peaks(
    shape: tuple[int, int, int],
    centres: NDArray[np.float64],
    sigmas: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Expected counts of voxel-integrated 3-D Gaussians (module docstring) on a zero background.

    ``centres`` and ``sigmas`` are (n, 3) in (frame, y, z); ``amplitudes`` (n,) are peak densities.
    """
    expected = np.zeros(shape, dtype=np.float64)
    for centre, sigma, amplitude in zip(centres, sigmas, amplitudes, strict=True):
        box, profiles = [], []
        for axis in range(3):
            low = max(0, int(np.floor(centre[axis] - _REACH * sigma[axis])))
            high = min(shape[axis], int(np.ceil(centre[axis] + _REACH * sigma[axis])) + 1)
            if low >= high:
                break
            index = np.arange(low, high, dtype=np.float64)
            edges = (np.append(index - 0.5, high - 0.5) - centre[axis]) / sigma[axis]
            profiles.append(np.sqrt(2 * np.pi) * sigma[axis] * np.diff(ndtr(edges)))
            box.append(slice(low, high))
        else:
            expected[tuple(box)] += amplitude * np.einsum("i,j,k->ijk", *profiles)
    return expected


def add_noise(
    expected: NDArray[np.float64], *, background: float, dark: float, rng: np.random.Generator
) -> NDArray[np.uint16]:
    """Detector readout: ``Poisson(background + expected) + dark``, clipped to the uint16 range."""
    counts = rng.poisson(background + expected) + np.rint(dark)
    readout: NDArray[np.uint16] = np.clip(counts, 0, np.iinfo(np.uint16).max).astype(np.uint16)
    return readout


def make_blob_stack(
    *,
    n_frames: int = 48,
    shape: tuple[int, int] = (128, 128),
    n_peaks: int = 40,
    amplitude: tuple[float, float] = (300.0, 3000.0),
    sigma_yz: tuple[float, float] = (0.8, 2.0),
    sigma_frame: tuple[float, float] = (0.4, 1.2),
    background: float = 5.0,
    dark: float = 100.0,
    omega0: float = 0.0,
    domega: float = 0.25,
    seed: int = 0,
) -> tuple[NDArray[np.uint16], SyntheticTruth]:
    """Blob-level stack: ``n_peaks`` 3-D Gaussians with uniform random widths and amplitudes.

    Defaults follow the reference note (σ_y, σ_z 0.8-2 px, σ_ω 0.4-1.2 frames, A 300-3000, background 5,
    dark 100) at a CI size. Centres keep 4σ from the detector edges and 3σ from the first and last frame, and
    any two peaks are at least 3.5·(σ₁ + σ₂) + 1 apart along some axis, so each peak is one blob above the
    recommended threshold and recall measures the search, not the generator.
    """
    frames = integer(n_frames, field="n_frames", minimum=8, hint="Use ≥ 8 frames so peaks fit in ω.")
    ny = integer(shape[0], field="shape", minimum=32, hint="Use frames of at least 32x32 pixels.")
    nz = integer(shape[1], field="shape", minimum=32, hint="Use frames of at least 32x32 pixels.")
    count = integer(n_peaks, field="n_peaks", minimum=0)
    rng = np.random.default_rng(seed)
    low = np.array([sigma_frame[0], sigma_yz[0], sigma_yz[0]])
    high = np.array([sigma_frame[1], sigma_yz[1], sigma_yz[1]])
    size = np.array([frames, ny, nz], dtype=np.float64)
    margin_factor = np.array([3.0, 4.0, 4.0])
    centres: list[NDArray[np.float64]] = []
    sigmas: list[NDArray[np.float64]] = []
    misses = 0
    # Random sequential placement; give up after many misses in a row (the volume is full).
    while len(centres) < count and misses < 5000:
        sigma = rng.uniform(low, high)
        margin = margin_factor * sigma
        centre = rng.uniform(margin, np.maximum(size - 1 - margin, margin))
        if centres:
            gap = np.abs(np.asarray(centres) - centre) - 3.5 * (np.asarray(sigmas) + sigma) - 1.0
            if not np.all(gap.max(axis=1) > 0):
                misses += 1
                continue
        misses = 0
        centres.append(centre)
        sigmas.append(sigma)
    if len(centres) < count:
        raise InvalidInput(
            f"could not place {count} separated peaks in a {frames}x{ny}x{nz} stack (placed {len(centres)}); "
            "ask for fewer peaks or a larger stack.",
            details={"field": "n_peaks"},
        )
    centre_array = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    sigma_array = np.asarray(sigmas, dtype=np.float64).reshape(-1, 3)
    amplitudes = rng.uniform(amplitude[0], amplitude[1], size=len(centres))
    stack, truth = _finish(
        (frames, ny, nz),
        centre_array,
        sigma_array,
        amplitudes,
        background=background,
        dark=dark,
        omega0=omega0,
        domega=domega,
        rng=rng,
    )
    return stack, truth


def make_grain_stack(
    *,
    geometry: FarFieldGeometry = SMALL_GEOMETRY,
    lattice_a: float = 4.08,
    n_rings: int = 5,
    n_grains: int = 3,
    n_frames: int = 90,
    omega0: float = 0.0,
    domega: float = 1.0,
    amplitude: tuple[float, float] = (1000.0, 5000.0),
    sigma_px: float = 1.0,
    sigma_frame: float = 0.5,
    background: float = 5.0,
    dark: float = 100.0,
    seed: int = 0,
) -> tuple[NDArray[np.uint16], SyntheticTruth]:
    """Grain-level stack: the spots of ``n_grains`` random fcc grains (Au by default) seen over the scan.

    Only spots whose centre lies ≥ 3σ inside the scan and ≥ 4σ inside the detector are drawn; truth lists
    exactly those, with grain, hkl and ring. Spots of different grains may overlap, as on a real detector.
    """
    frames = integer(n_frames, field="n_frames", minimum=8, hint="Use ≥ 8 frames so spots fit in ω.")
    step = real_number(domega, field="domega", nonzero=True)
    start = real_number(omega0, field="omega0")
    s_px = real_number(sigma_px, field="sigma_px", positive=True)
    s_frame = real_number(sigma_frame, field="sigma_frame", positive=True)
    rng = np.random.default_rng(seed)
    reflections = cubic_reflections(lattice_a, n_rings)
    spots = diffraction_spots(random_orientations(n_grains, rng), reflections, lattice_a, geometry)
    # Frame coordinate of each spot, measured along the scan direction and wrapped into one turn.
    frame = ((spots.omega - start) * np.sign(step)) % 360.0 / abs(step)
    inside = (
        (frame >= 3 * s_frame)
        & (frame <= frames - 1 - 3 * s_frame)
        & (spots.y >= 4 * s_px)
        & (spots.y <= geometry.shape[0] - 1 - 4 * s_px)
        & (spots.z >= 4 * s_px)
        & (spots.z <= geometry.shape[1] - 1 - 4 * s_px)
    )
    index = np.flatnonzero(inside)
    index = index[np.argsort(frame[index], kind="stable")]
    centres = np.stack([frame[index], spots.y[index], spots.z[index]], axis=1)
    sigmas = np.tile([s_frame, s_px, s_px], (len(index), 1))
    amplitudes = rng.uniform(amplitude[0], amplitude[1], size=len(index))
    stack, truth = _finish(
        (frames, *geometry.shape),
        centres,
        sigmas,
        amplitudes,
        background=background,
        dark=dark,
        omega0=start,
        domega=step,
        rng=rng,
    )
    for peak, k in zip(truth.peaks, index, strict=True):
        peak["grain"] = int(spots.grain[k])
        peak["hkl"] = [int(v) for v in spots.hkl[k]]
        peak["ring"] = int(spots.ring[k])
    radii = tuple(float(r) for r in ring_radii_px(reflections.d_spacing, geometry))
    return stack, replace(truth, ring_radii_px=radii)


def _finish(
    shape: tuple[int, int, int],
    centres: NDArray[np.float64],
    sigmas: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
    *,
    background: float,
    dark: float,
    omega0: float,
    domega: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.uint16], SyntheticTruth]:
    """Render, add noise, and write the truth records."""
    bg = real_number(background, field="background", positive=True)
    offset = real_number(dark, field="dark")
    stack = add_noise(render_peaks(shape, centres, sigmas, amplitudes), background=bg, dark=offset, rng=rng)
    peaks = [
        TruePeak(
            frame=float(c[0]),
            omega=float(omega0 + c[0] * domega),
            y=float(c[1]),
            z=float(c[2]),
            amplitude=float(a),
            sigma_frame=float(s[0]),
            sigma_y=float(s[1]),
            sigma_z=float(s[2]),
            intensity=float(a * (2 * np.pi) ** 1.5 * np.prod(s)),
        )
        for c, s, a in zip(centres, sigmas, amplitudes, strict=True)
    ]
    truth = SyntheticTruth(
        peaks=peaks,
        dark=float(np.rint(offset)),
        background=bg,
        threshold=bg + 6.0 * np.sqrt(bg),
        omega0=omega0,
        domega=domega,
    )
    return stack, truth
