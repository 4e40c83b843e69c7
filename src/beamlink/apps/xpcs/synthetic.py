"""Synthetic XPCS measurements with a known relaxation rate Γ = D·q² (Brownian particles).

Statistically exact Gaussian speckle: for every pixel p and each of M independent modes, a complex field
follows an Ornstein-Uhlenbeck (AR(1)) process in frame steps Δt,

    E(t+Δt) = a_p·E(t) + √(1 - a_p²)·w(t),   a_p = exp(-Γ_p Δt),   Γ_p = D·q_p²,

with w circular complex normal of unit variance and E(0) drawn from the stationary law. The intensity is
I_p(t) = (1/M) Σ_m |E_m|² and the counts are Poisson(k̄·I_p(t)). Then |g1| = exp(-Γτ), so

    g2(q, τ) = 1 + β·exp(-2Γτ),   β = 1/M,

and Poisson noise adds variance but no bias for τ ≥ 1 frame. Defaults (64x64 px, 12 rings of 2 px from
r = 4 to 28 px, each split in 2 static bins, M = 2, k̄ = 5, T = 4096) are those verified in
``science-clients.md`` §1.4; the geometry (75 µm pixels at 5 m, λ = 0.1 nm) and D = 4.9 µm²/s (50 nm silica
in water at 25 °C) with Δt = 50 µs put Γ·Δt between 0.0035 and 0.17 across the rings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import positive_float, positive_int
from beamlink.apps.xpcs.measurement import AttrValue, XpcsMeasurement, write_measurement
from beamlink.apps.xpcs.qmap import DetectorGeometry, QPartition, partition_q
from beamlink.errors import InvalidInput

__all__ = [
    "SyntheticXpcsConfig",
    "XpcsTruth",
    "iter_speckle_frames",
    "make_measurement",
    "write_synthetic_measurement",
]


@dataclass(frozen=True)
class SyntheticXpcsConfig:
    """Parameters of a synthetic measurement (SI lengths, q in nm⁻¹, D in nm²/s; 1 µm²/s = 10⁶ nm²/s)."""

    shape: tuple[int, int] = (64, 64)
    n_frames: int = 4096
    frame_interval_s: float = 5e-5
    diffusion_nm2_s: float = 4.9e6
    n_modes: int = 2
    mean_count: float = 5.0
    pixel_size_m: float = 75e-6
    distance_m: float = 5.0
    wavelength_m: float = 1e-10
    beam_center_yx_px: tuple[float, float] = (32.0, 32.0)
    ring_radii_px: tuple[float, float] = (4.0, 28.0)
    n_dynamic: int = 12
    n_static_per_dynamic: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        positive_int(self.n_frames, field="n_frames", minimum=2)
        positive_float(self.frame_interval_s, field="frame_interval_s")
        positive_float(self.diffusion_nm2_s, field="diffusion_nm2_s")
        positive_int(self.n_modes, field="n_modes")
        positive_float(self.mean_count, field="mean_count")
        r_in, r_out = self.ring_radii_px
        if not 0 <= r_in < r_out:
            raise InvalidInput(
                f"ring_radii_px must be (inner, outer) with 0 <= inner < outer, got {self.ring_radii_px}.",
                details={"field": "ring_radii_px"},
            )

    def geometry(self) -> DetectorGeometry:
        """The detector geometry these parameters describe."""
        return DetectorGeometry(
            shape=self.shape,
            pixel_size_m=self.pixel_size_m,
            distance_m=self.distance_m,
            wavelength_m=self.wavelength_m,
            beam_center_yx_px=self.beam_center_yx_px,
        )

    def partition(self) -> QPartition:
        """Dynamic rings between ``ring_radii_px``, each cut into static sub-rings."""
        geometry = self.geometry()
        return partition_q(
            geometry.q_map(),
            n_dynamic=self.n_dynamic,
            n_static_per_dynamic=self.n_static_per_dynamic,
            q_min=geometry.q_at_radius(self.ring_radii_px[0]),
            q_max=geometry.q_at_radius(self.ring_radii_px[1]),
        )


@dataclass(frozen=True)
class XpcsTruth:
    """The known answer of a synthetic measurement.

    Attributes:
        diffusion_nm2_s: D, nm²/s.
        contrast: β = 1/M.
        baseline: g2(τ → ∞) = 1.
        gamma_per_s: Γ = D·⟨q²⟩ of each dynamic bin, s⁻¹, (n_dynamic,).
        gamma_dt: Γ·Δt of each dynamic bin (decay per frame), (n_dynamic,).
    """

    diffusion_nm2_s: float
    contrast: float
    baseline: float
    gamma_per_s: NDArray[np.float64]
    gamma_dt: NDArray[np.float64]

    def attrs(self, config: SyntheticXpcsConfig) -> dict[str, AttrValue]:
        """Flat HDF5 attributes: the truth plus the generator parameters that produced it."""
        out: dict[str, AttrValue] = {
            "diffusion_nm2_s": self.diffusion_nm2_s,
            "contrast": self.contrast,
            "baseline": self.baseline,
            "generator": "beamlink.apps.xpcs.synthetic",
        }
        for key, value in asdict(config).items():
            if isinstance(value, tuple):
                for i, item in enumerate(value):
                    out[f"config_{key}_{i}"] = item
            else:
                out[f"config_{key}"] = value
        return out


def _complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.complex64]:
    """Circular complex normal samples with E|w|² = 1."""
    parts = rng.standard_normal((*shape, 2), dtype=np.float32) * np.float32(np.sqrt(0.5))
    return parts.view(np.complex64)[..., 0]


def iter_speckle_frames(
    gamma_dt: NDArray[np.float64],
    n_frames: int,
    *,
    n_modes: int = 2,
    mean_count: float = 5.0,
    rng: np.random.Generator,
    batch_frames: int = 256,
) -> Iterator[NDArray[np.uint32]]:
    """Yield Poisson speckle frames (B, *gamma_dt.shape); pixel p decorrelates at ``gamma_dt[p]`` per frame.

    The field recursion runs frame by frame (each pixel has its own a_p, so no closed-form filter applies);
    everything else is vectorised over the batch.
    """
    n_total = positive_int(n_frames, field="n_frames")
    rate = np.asarray(gamma_dt, dtype=np.float64)
    if rate.ndim != 2 or not np.all(np.isfinite(rate)) or rate.min() < 0:
        raise InvalidInput(
            "gamma_dt must be a 2-D map of finite decay rates >= 0 per frame.", details={"field": "gamma_dt"}
        )
    decay = np.exp(-rate).ravel().astype(np.float32)
    kick = np.sqrt(1.0 - decay.astype(np.float64) ** 2).astype(np.float32)
    n_pix = decay.size
    field = _complex_normal(rng, (n_modes, n_pix))  # stationary start
    for start in range(0, n_total, batch_frames):
        n = min(batch_frames, n_total - start)
        fields = _complex_normal(rng, (n, n_modes, n_pix))
        fields *= kick
        fields[0] = field
        for t in range(1, n):
            fields[t] += decay * fields[t - 1]
        field = decay * fields[-1]
        # Next batch starts one step on: E(t+1) = a·E(t) + kick·w; the random part is drawn then.
        field += kick * _complex_normal(rng, (n_modes, n_pix))
        # |E|² summed over modes in one pass over the (real, imag) pairs, without complex temporaries.
        parts = fields.view(np.float32).reshape(n, n_modes, n_pix, 2)
        intensity = np.einsum("tmpc,tmpc->tp", parts, parts, dtype=np.float64) / n_modes
        counts = rng.poisson(mean_count * intensity)
        yield counts.astype(np.uint32).reshape(n, *rate.shape)


def _truth(config: SyntheticXpcsConfig, partition: QPartition) -> XpcsTruth:
    gamma = config.diffusion_nm2_s * partition.dynamic_q2()
    return XpcsTruth(
        diffusion_nm2_s=config.diffusion_nm2_s,
        contrast=1.0 / config.n_modes,
        baseline=1.0,
        gamma_per_s=gamma,
        gamma_dt=gamma * config.frame_interval_s,
    )


def _frames(config: SyntheticXpcsConfig, partition: QPartition) -> Iterator[NDArray[np.uint32]]:
    gamma_dt = config.diffusion_nm2_s * partition.q**2 * config.frame_interval_s
    return iter_speckle_frames(
        gamma_dt,
        config.n_frames,
        n_modes=config.n_modes,
        mean_count=config.mean_count,
        rng=np.random.default_rng(config.seed),
    )


def make_measurement(config: SyntheticXpcsConfig | None = None) -> tuple[XpcsMeasurement, XpcsTruth]:
    """Generate a synthetic measurement in memory; returns (measurement, truth)."""
    cfg = config or SyntheticXpcsConfig()
    partition = cfg.partition()
    truth = _truth(cfg, partition)
    frames = np.concatenate(list(_frames(cfg, partition)))
    measurement = XpcsMeasurement(
        frames=frames,
        n_frames=cfg.n_frames,
        frame_dtype=str(frames.dtype),
        geometry=cfg.geometry(),
        frame_interval_s=cfg.frame_interval_s,
        partition=partition,
        sample={"name": "synthetic Brownian particles", "description": "beamlink synthetic XPCS speckle"},
        truth=truth.attrs(cfg),
    )
    return measurement, truth


def write_synthetic_measurement(path: str | Path, config: SyntheticXpcsConfig | None = None) -> XpcsTruth:
    """Generate a synthetic measurement straight into an HDF5 file (streamed; memory stays at one batch)."""
    cfg = config or SyntheticXpcsConfig()
    partition = cfg.partition()
    truth = _truth(cfg, partition)
    write_measurement(
        path,
        _frames(cfg, partition),
        geometry=cfg.geometry(),
        frame_interval_s=cfg.frame_interval_s,
        partition=partition,
        sample={"name": "synthetic Brownian particles", "description": "beamlink synthetic XPCS speckle"},
        truth=truth.attrs(cfg),
    )
    return truth
