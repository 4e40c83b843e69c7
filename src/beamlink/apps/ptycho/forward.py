"""The far-field ptychography forward model and the projections every engine shares (reference note §5.1).

For scan position j with top-left corner r_j, the object view is ``O_j = O[r_j : r_j + m]``, the exit wave
``ψ_j = P·O_j`` and the far field ``Ψ_j = F[ψ_j]`` (unnormalised 2-D FFT, so Σ|Ψ|² = m0·m1·Σ|ψ|²). The
detector measures ``I_j = |Ψ_j|²``.

Modulus projection: ``Π_F(Ψ) = √I · Ψ/|Ψ|`` (and ``√I`` where Ψ = 0); it keeps the phase and imposes the
measured modulus, and applying it twice changes nothing.

Data error: ``E_data = Σ_j Σ_k (|Ψ_jk| - √I_jk)² / Σ I``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import fft

__all__ = [
    "data_error",
    "diffraction_intensities",
    "exit_waves",
    "far_field",
    "project_modulus",
    "scatter_add",
    "view_index",
]


def view_index(
    positions: NDArray[np.int64], window: tuple[int, int], object_shape: tuple[int, int]
) -> NDArray[np.intp]:
    """Flat object indices of every view, (J, m0, m1): ``O.ravel()[index]`` stacks the J views."""
    rows = positions[:, 0, None, None] + np.arange(window[0])[None, :, None]
    cols = positions[:, 1, None, None] + np.arange(window[1])[None, None, :]
    index: NDArray[np.intp] = (rows * object_shape[1] + cols).astype(np.intp)
    return index


def scatter_add(
    values: NDArray[np.complex128] | NDArray[np.float64],
    index: NDArray[np.intp],
    object_shape: tuple[int, int],
) -> NDArray[np.complex128]:
    """Σ_j of the views put back in place on the object (overlaps add up), via two ``np.bincount`` calls."""
    size = object_shape[0] * object_shape[1]
    flat = index.ravel()
    real = np.bincount(flat, weights=np.real(values).ravel(), minlength=size)
    imag = np.bincount(flat, weights=np.imag(values).ravel(), minlength=size)
    total: NDArray[np.complex128] = (real + 1j * imag).reshape(object_shape)
    return total


def exit_waves(
    obj: NDArray[np.complex128], probe: NDArray[np.complex128], index: NDArray[np.intp]
) -> NDArray[np.complex128]:
    """ψ_j = P·O_j for every view, (J, m0, m1)."""
    waves: NDArray[np.complex128] = probe * obj.ravel()[index]
    return waves


def far_field(waves: NDArray[np.complex128]) -> NDArray[np.complex128]:
    """Ψ = F[ψ] over the last two axes (unnormalised FFT, zero frequency at [0, 0])."""
    field: NDArray[np.complex128] = fft.fft2(waves)
    return field


def diffraction_intensities(
    obj: NDArray[np.complex128], probe: NDArray[np.complex128], positions: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Noise-free I_j = |F[P·O_j]|², (J, m0, m1)."""
    index = view_index(positions, (probe.shape[0], probe.shape[1]), (obj.shape[0], obj.shape[1]))
    intensities: NDArray[np.float64] = np.abs(far_field(exit_waves(obj, probe, index))) ** 2
    return intensities


def project_modulus(
    field: NDArray[np.complex128],
    amplitude: NDArray[np.float64],
    modulus: NDArray[np.float64] | None = None,
) -> NDArray[np.complex128]:
    """Π_F: replace |Ψ| by the measured amplitude √I and keep the phase (phase 0 where Ψ = 0).

    ``modulus`` may pass |Ψ| when the caller already has it (the PIE loop does, for the data error).
    """
    size = np.abs(field) if modulus is None else modulus
    nonzero = size > 0
    projected: NDArray[np.complex128] = field * np.divide(
        amplitude, size, out=np.zeros_like(size), where=nonzero
    )
    if not nonzero.all():  # no phase to keep: take phase 0
        projected[~nonzero] = amplitude[~nonzero]
    return projected


def data_error(field: NDArray[np.complex128], amplitude: NDArray[np.float64]) -> float:
    """E_data = Σ (|Ψ| - √I)² / Σ I."""
    return float(np.sum((np.abs(field) - amplitude) ** 2) / np.sum(amplitude**2))
