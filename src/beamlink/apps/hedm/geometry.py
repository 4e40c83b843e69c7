# ruff: noqa: RUF002  (Greek letters in the equations are meant)
"""Far-field diffraction geometry: Bragg rings, ring threshold maps and where a grain's spots land.

Lab frame (as in the reference note, §3.3): the beam runs along +x, the sample rotates by ω about +z, the
detector plane is normal to x at distance L. For a cubic grain with orientation U and lattice constant a, the
scattering vector of reflection h is ``G_s = U·h / a`` (``|G| = 1/d``), and at rotation ω it is
``G_l = R_z(ω)·G_s``. With ``k_in = (1/λ, 0, 0)`` the Bragg condition ``|k_in + G_l| = |k_in|`` reads

    G_l,x = -λ|G|²/2,  with  G_l,x = A cos ω + B sin ω,  A = G_s,x,  B = -G_s,y,

so with ``ρ = √(A² + B²)`` and ``φ = atan2(B, A)`` the two solutions are ``ω = φ ± arccos(-λ|G|²/(2ρ))``
(none when the argument is outside [-1, 1]). The diffracted beam is ``k_out = k_in + G_l``, the Bragg
angle ``2θ = arccos(λ·k_out,x)``, and the spot hits the detector at ``(Y, Z) = L·(k_out,y, k_out,z)/k_out,x``
from the beam centre (grain at the origin). Its ring radius is ``R = L·tan 2θ``, ``2θ = 2·arcsin(λ/(2d))``.

Detector pixels: ``y = y_c + Y/pixel`` along stack axis 1, ``z = z_c + Z/pixel`` along axis 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from beamlink.apps._arrays import integer, real_number
from beamlink.errors import InvalidInput

__all__ = [
    "MIDAS_AU_EXAMPLE",
    "CubicReflections",
    "FarFieldGeometry",
    "SpotList",
    "cubic_reflections",
    "diffraction_spots",
    "random_orientations",
    "ring_radii_px",
    "ring_threshold_map",
]


@dataclass(frozen=True)
class FarFieldGeometry:
    """Where the far-field detector sits.

    Attributes:
        wavelength_a: X-ray wavelength λ in Å (E[keV] = 12.398 / λ[Å]).
        distance_mm: sample-to-detector distance L in mm.
        pixel_mm: pixel pitch in mm (square pixels).
        shape: detector (y, z) size in pixels.
        beam_center: direct-beam position (y, z) in pixel coordinates.
    """

    wavelength_a: float
    distance_mm: float
    pixel_mm: float
    shape: tuple[int, int]
    beam_center: tuple[float, float]

    def __post_init__(self) -> None:
        for name in ("wavelength_a", "distance_mm", "pixel_mm"):
            real_number(getattr(self, name), field=name, positive=True)
        if len(self.shape) != 2 or len(self.beam_center) != 2:
            raise InvalidInput("shape and beam_center must both be (y, z) pairs.", details={"field": "shape"})
        for axis in self.shape:
            integer(axis, field="shape", minimum=1, hint="The detector needs at least one pixel per axis.")
        for value in self.beam_center:
            real_number(value, field="beam_center")


# The MIDAS example set-up (FF_HEDM/Example/Parameters.txt): Au at 55.6 keV, 1 m, 200 µm pixels, 2048².
MIDAS_AU_EXAMPLE = FarFieldGeometry(
    wavelength_a=0.22291, distance_mm=1000.0, pixel_mm=0.2, shape=(2048, 2048), beam_center=(1024.0, 1024.0)
)


@dataclass(frozen=True)
class CubicReflections:
    """Reflections of a cubic lattice grouped into rings.

    ``hkl`` (n, 3) and ``ring`` (n,) per reflection, ``d_spacing`` (n_rings,) per ring, in Å.
    """

    hkl: NDArray[np.int64]
    ring: NDArray[np.int64]
    d_spacing: NDArray[np.float64]


@dataclass(frozen=True)
class SpotList:
    """Diffraction spots, one row each: ω in degrees in [0, 360), detector (y, z) in pixels, 2θ in radians,
    the grain index, the reflection, its ring, and the branch (+1 or -1, the sign before the arccos)."""

    omega: NDArray[np.float64]
    y: NDArray[np.float64]
    z: NDArray[np.float64]
    two_theta: NDArray[np.float64]
    grain: NDArray[np.int64]
    hkl: NDArray[np.int64]
    ring: NDArray[np.int64]
    branch: NDArray[np.int64]


def cubic_reflections(lattice_a: float, n_rings: int, *, centring: str = "fcc") -> CubicReflections:
    """The reflections of the ``n_rings`` lowest-angle rings of a cubic lattice (d = a / √(h²+k²+l²)).

    ``centring``: ``"fcc"`` (h, k, l all even or all odd), ``"bcc"`` (h+k+l even) or ``"sc"`` (all).
    """
    a = real_number(lattice_a, field="lattice_a", positive=True)
    rings = integer(n_rings, field="n_rings", minimum=1, maximum=40, hint="Ask for 1 to 40 rings.")
    span = np.arange(-12, 13)
    hkl = np.stack(np.meshgrid(span, span, span, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    parity = hkl % 2
    allowed = {
        "fcc": np.all(parity == parity[:, :1], axis=1),
        "bcc": hkl.sum(axis=1) % 2 == 0,
        "sc": np.ones(len(hkl), dtype=bool),
    }
    if centring not in allowed:
        raise InvalidInput(
            f"centring must be one of {sorted(allowed)}, got {centring!r}.", details={"field": "centring"}
        )
    hkl = hkl[allowed[centring]]
    squared = (hkl**2).sum(axis=1)
    levels = np.unique(squared)[:rings]
    keep = np.isin(squared, levels)
    hkl, squared = hkl[keep], squared[keep]
    ring = np.searchsorted(levels, squared)
    return CubicReflections(
        hkl=hkl.astype(np.int64), ring=ring.astype(np.int64), d_spacing=a / np.sqrt(levels.astype(np.float64))
    )


def ring_radii_px(d_spacing: NDArray[np.float64], geometry: FarFieldGeometry) -> NDArray[np.float64]:
    """Ring radii R = L·tan 2θ / pixel, with 2θ = 2·arcsin(λ / (2d)); NaN where λ > 2d (no reflection)."""
    d = np.asarray(d_spacing, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        two_theta = 2.0 * np.arcsin(geometry.wavelength_a / (2.0 * d))
    radii: NDArray[np.float64] = geometry.distance_mm * np.tan(two_theta) / geometry.pixel_mm
    return radii


def ring_threshold_map(
    geometry: FarFieldGeometry,
    radii_px: NDArray[np.float64],
    *,
    width_px: float,
    thresholds: float | NDArray[np.float64],
) -> NDArray[np.float64]:
    """The per-pixel threshold of the MIDAS ring mask: T_ring within ±width/2 of a ring, 0 (ignore) elsewhere.

    Where two rings' bands overlap, the outer ring's threshold wins.
    """
    width = real_number(width_px, field="width_px", positive=True)
    radii = np.asarray(radii_px, dtype=np.float64).reshape(-1)
    levels = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), radii.shape)
    if not (np.isfinite(radii).all() and np.isfinite(levels).all() and (levels > 0).all()):
        raise InvalidInput(
            "radii_px must be finite and thresholds finite and > 0, one per ring (or one for all).",
            details={"field": "thresholds"},
        )
    y, z = np.indices(geometry.shape, dtype=np.float64)
    radius = np.hypot(y - geometry.beam_center[0], z - geometry.beam_center[1])
    threshold = np.zeros(geometry.shape, dtype=np.float64)
    for ring_radius, level in sorted(zip(radii, levels, strict=True)):
        threshold[np.abs(radius - ring_radius) <= width / 2] = level
    return threshold


def random_orientations(n_grains: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``n_grains`` orientation matrices U (n, 3, 3), uniform on SO(3)."""
    count = integer(n_grains, field="n_grains", minimum=1, hint="Ask for at least one grain.")
    matrices: NDArray[np.float64] = Rotation.random(count, random_state=rng).as_matrix()
    return matrices


def diffraction_spots(
    orientations: NDArray[np.float64],
    reflections: CubicReflections,
    lattice_a: float,
    geometry: FarFieldGeometry,
) -> SpotList:
    """Every spot of every grain over a full turn of ω (both branches), from the equations above."""
    u = np.asarray(orientations, dtype=np.float64)
    if u.ndim != 3 or u.shape[1:] != (3, 3):
        raise InvalidInput(
            f"orientations must be (n_grains, 3, 3) rotation matrices, got shape {u.shape}.",
            details={"field": "orientations"},
        )
    a = real_number(lattice_a, field="lattice_a", positive=True)
    lam = geometry.wavelength_a
    g_s = np.einsum("gij,nj->gni", u, reflections.hkl.astype(np.float64)) / a  # (grains, n, 3)
    g_squared = (g_s**2).sum(axis=-1)
    big_a, big_b = g_s[..., 0], -g_s[..., 1]
    rho = np.hypot(big_a, big_b)
    phi = np.arctan2(big_b, big_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_arg = -lam * g_squared / (2.0 * rho)
    reachable = np.abs(cos_arg) <= 1.0
    grain_index, refl_index = np.nonzero(reachable)
    rows = []
    for sign in (1, -1):
        omega = phi[reachable] + sign * np.arccos(cos_arg[reachable])
        g = g_s[reachable]
        cos_w, sin_w = np.cos(omega), np.sin(omega)
        k_out = np.stack(
            [1.0 / lam + cos_w * g[:, 0] - sin_w * g[:, 1], sin_w * g[:, 0] + cos_w * g[:, 1], g[:, 2]],
            axis=1,
        )
        two_theta = np.arccos(np.clip(lam * k_out[:, 0], -1.0, 1.0))
        # Back-scattered beams (k_out,x ≤ 0) never reach a detector downstream: NaN, not a mirrored hit.
        with np.errstate(divide="ignore"):
            scale = np.where(
                k_out[:, 0] > 0, geometry.distance_mm / (k_out[:, 0] * geometry.pixel_mm), np.nan
            )
        rows.append(
            (
                np.degrees(omega) % 360.0,
                geometry.beam_center[0] + k_out[:, 1] * scale,
                geometry.beam_center[1] + k_out[:, 2] * scale,
                two_theta,
                np.full(omega.shape, sign, dtype=np.int64),
            )
        )
    omega, y, z, two_theta, branch = (np.concatenate(parts) for parts in zip(*rows, strict=True))
    grains = np.concatenate([grain_index, grain_index]).astype(np.int64)
    refl = np.concatenate([refl_index, refl_index])
    return SpotList(
        omega=omega,
        y=y,
        z=z,
        two_theta=two_theta,
        grain=grains,
        hkl=reflections.hkl[refl],
        ring=reflections.ring[refl],
        branch=branch.astype(np.int64),
    )
