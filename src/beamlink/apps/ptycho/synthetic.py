# ruff: noqa: RUF002  (Greek letters in the equations are meant)
"""A seeded synthetic far-field ptychography scan with its ground truth (reference note §5.3, scaled down).

- Object ``O`` (n×n, complex): amplitude in [0.6, 1] and phase in [-π/4, π/4], each a smooth random field
  plus a few sharp-edged discs, so both low and high spatial frequencies are present (the note used two
  natural images; none ships with NumPy/SciPy).
- Probe ``P`` (m×m): a disc of ``radius`` px, apodised by a 1 px Gaussian blur, with the defocus-like phase
  ``2π·r²/(m/2)²``.
- Raster scan with ``step`` px and ±``jitter`` px of integer jitter (jitter breaks the raster-grid
  ambiguities of blind reconstruction); 71 % linear overlap at the defaults (1 - step/(2·radius)).
- Intensities ``|F[P·O_j]|²``; with ``photons`` set, the probe is scaled so a pattern holds ``photons`` on
  average and each pixel is drawn from a Poisson law. ``truth.probe`` is the scaled probe.

The reference note's prototype size was n = 192, m = 64, step 8 (256 views); the defaults here are the same
scan scaled by ½ (n = 96, m = 32, step 4, radius 7 → 289 views), which keeps the overlap and runs in CI time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from beamlink.apps._arrays import integer
from beamlink.apps.ptycho.forward import diffraction_intensities
from beamlink.errors import InvalidInput

__all__ = [
    "ScanData",
    "ScanTruth",
    "blurred_probe",
    "make_object",
    "make_probe",
    "make_scan",
    "scan_positions",
]


@dataclass(frozen=True)
class ScanData:
    """What a detector and a scan stage record: patterns (J, m, m), top-left corners (J, 2), object size."""

    intensities: NDArray[np.float64]
    positions: NDArray[np.int64]
    object_shape: tuple[int, int]


@dataclass(frozen=True)
class ScanTruth:
    """What the reconstruction should find: the object and the probe (in the intensities' units)."""

    object: NDArray[np.complex128]
    probe: NDArray[np.complex128]
    photons: float | None


def _unit_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """A smooth random field scaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    span = field.max() - field.min()
    unit: NDArray[np.float64] = (field - field.min()) / (span if span > 0 else 1.0)
    return unit


def make_object(n: int, rng: np.random.Generator) -> NDArray[np.complex128]:
    """Complex object: amplitude 0.6 + 0.4·a, phase (π/4)·(2p - 1), a and p smooth fields plus sharp discs."""
    size = integer(n, field="n", minimum=8)
    y, x = np.indices((size, size), dtype=np.float64)
    layers = []
    for sigma in (size / 24, size / 16):
        field = 0.6 * _unit_field((size, size), sigma, rng)
        for _ in range(max(3, size // 16)):
            cy, cx = rng.uniform(0, size, 2)
            radius = rng.uniform(size / 24, size / 10)
            field += rng.uniform(-0.4, 0.4) * ((y - cy) ** 2 + (x - cx) ** 2 <= radius**2)
        span = field.max() - field.min()
        layers.append((field - field.min()) / (span if span > 0 else 1.0))
    amplitude = 0.6 + 0.4 * layers[0]
    phase = (np.pi / 4) * (2 * layers[1] - 1)
    obj: NDArray[np.complex128] = amplitude * np.exp(1j * phase)
    return obj


def make_probe(m: int, radius: float) -> NDArray[np.complex128]:
    """Apodised disc of ``radius`` px centred in an m×m window, with phase 2π·r²/(m/2)²."""
    size = integer(m, field="m", minimum=4)
    if not 0 < radius < size / 2:
        raise InvalidInput(
            f"probe radius {radius} must lie in (0, m/2 = {size / 2}); about m/4 samples the probe well.",
            details={"field": "radius"},
        )
    y, x = np.indices((size, size), dtype=np.float64) - (size - 1) / 2
    r2 = y**2 + x**2
    disc = ndimage.gaussian_filter((r2 <= radius**2).astype(np.float64), 1.0)
    probe: NDArray[np.complex128] = disc * np.exp(2j * np.pi * r2 / (size / 2) ** 2)
    return probe


def blurred_probe(probe: NDArray[np.complex128], sigma: float = 2.0) -> NDArray[np.complex128]:
    """A blind-start guess: |P| blurred by a Gaussian of ``sigma`` px, with no phase."""
    guess: NDArray[np.complex128] = ndimage.gaussian_filter(np.abs(probe), sigma).astype(np.complex128)
    return guess


def scan_positions(
    n: int, m: int, step: int, *, jitter: int = 1, rng: np.random.Generator | None = None
) -> NDArray[np.int64]:
    """Raster of top-left corners 0, step, 2·step, ... ≤ n - m on both axes, each moved up to ±jitter px."""
    size, window = integer(n, field="n", minimum=1), integer(m, field="m", minimum=1)
    stride = integer(step, field="step", minimum=1)
    if window > size:
        raise InvalidInput(
            f"the probe window m = {window} is larger than the object n = {size}; make n ≥ m.",
            details={"field": "m"},
        )
    axis = np.arange(0, size - window + 1, stride)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    if jitter and rng is not None:
        grid = grid + rng.integers(-jitter, jitter + 1, size=grid.shape)
    positions: NDArray[np.int64] = np.clip(grid, 0, size - window).astype(np.int64)
    return positions


def make_scan(
    *,
    n: int = 96,
    m: int = 32,
    radius: float = 7.0,
    step: int = 4,
    jitter: int = 1,
    photons: float | None = None,
    seed: int = 0,
) -> tuple[ScanData, ScanTruth]:
    """Build object, probe and scan and simulate the intensities (module docstring); return (data, truth)."""
    rng = np.random.default_rng(seed)
    obj = make_object(n, rng)
    probe = make_probe(m, radius)
    positions = scan_positions(n, m, step, jitter=jitter, rng=rng)
    intensities = diffraction_intensities(obj, probe, positions)
    if photons is not None:
        if not np.isfinite(photons) or photons <= 0:
            raise InvalidInput(
                f"photons must be a positive count per pattern (e.g. 1e5-1e7), got {photons}; "
                "pass None for noise-free data.",
                details={"field": "photons"},
            )
        scale = photons / intensities.sum(axis=(1, 2)).mean()
        probe = probe * np.sqrt(scale)
        intensities = rng.poisson(intensities * scale).astype(np.float64)
    data = ScanData(intensities=intensities, positions=positions, object_shape=(obj.shape[0], obj.shape[1]))
    return data, ScanTruth(object=obj, probe=probe, photons=photons)
