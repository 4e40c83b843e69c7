# ruff: noqa: RUF002  (Greek letters in the equations are meant)
"""Iterative far-field ptychography: ePIE, rPIE (both with optional probe refinement) and the difference map.

Notation of :mod:`~beamlink.apps.ptycho.forward`: ``ψ_j = P·O_j``, ``Ψ_j = F[ψ_j]``, and
``Δ_j = F⁻¹[Π_F(Ψ_j)] - ψ_j``.

**ePIE** (Maiden & Rodenburg, Ultramicroscopy 109, 1256 (2009)), one view at a time in random order:

    O_j ← O_j + α·P*·Δ_j / max|P|²,        P ← P + β·O_j*·Δ_j / max|O_j|²       (α = β = 1 typical)

**rPIE** (Maiden, Johnson & Li, Optica 4, 736 (2017)) blends the local and the maximum weight:

    O_j ← O_j + P*·Δ_j / ((1-α)|P|² + α·max|P|²),   P ← P + O_j*·Δ_j / ((1-β)|O_j|² + β·max|O_j|²)

with α ≈ 0.05-0.25. Both updates use the values from before the step.

**DM** (Thibault et al., Science 321, 379 (2008)), all views at once on the (J, m, m) stack:

    Π_O: O = Σ_j P*·ψ_j / Σ_j |P|²  (and P = Σ_j O_j*·ψ_j / Σ_j |O_j|², alternated, when refining the probe)
    ψ ← ψ + β·[Π_F(2·Π_O(ψ) - ψ) - Π_O(ψ)]                                          (β = 1)

Every engine returns the data error ``E_data = Σ (|Ψ| - √I)² / Σ I`` per iteration: for the PIE engines it
is summed over the sweep from each view's Ψ before its update, for DM it is taken at Π_O(ψ).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import fft

from beamlink.apps._arrays import integer
from beamlink.apps.ptycho._checks import Scan, check_scan, unit_interval
from beamlink.apps.ptycho.forward import data_error, project_modulus, scatter_add, view_index
from beamlink.errors import InvalidInput

__all__ = ["Reconstruction", "dm", "epie", "rpie"]

log = logging.getLogger(__name__)

_Weight = Callable[[NDArray[np.complex128]], NDArray[np.complex128]]
_Rule = Callable[[float], _Weight]


@dataclass(frozen=True)
class Reconstruction:
    """An engine's result: object (n0, n1), probe (m0, m1), E_data per iteration, and the engine's name."""

    object: NDArray[np.complex128]
    probe: NDArray[np.complex128]
    errors: NDArray[np.float64]
    algorithm: str


def epie(
    intensities: object,
    positions: object,
    probe: object,
    *,
    object_shape: tuple[int, int],
    n_iter: int = 30,
    alpha: float = 1.0,
    beta: float = 1.0,
    update_probe: bool = False,
    probe_update_start: int = 0,
    object_guess: NDArray[np.complex128] | None = None,
    seed: int = 0,
) -> Reconstruction:
    """ePIE (module docstring); ``alpha`` and ``beta`` are the step sizes, the rest as for :func:`rpie`."""
    scan = check_scan(intensities, positions, probe, object_shape)
    return _pie(
        scan, "ePIE", _epie_weight, alpha, beta, n_iter, update_probe, probe_update_start, object_guess, seed
    )


def rpie(
    intensities: object,
    positions: object,
    probe: object,
    *,
    object_shape: tuple[int, int],
    n_iter: int = 30,
    alpha: float = 0.1,
    beta: float = 0.1,
    update_probe: bool = False,
    probe_update_start: int = 0,
    object_guess: NDArray[np.complex128] | None = None,
    seed: int = 0,
) -> Reconstruction:
    """rPIE (module docstring).

    Args:
        intensities: measured patterns I_j, (J, m0, m1), zero frequency at [0, 0].
        positions: top-left corners r_j (J, 2) of the probe window on the object, whole pixels.
        probe: the known probe, or the starting guess when ``update_probe``; (m0, m1).
        object_shape: (n0, n1) of the object; every window must fit inside it.
        n_iter: sweeps over all views.
        alpha, beta: object and probe regularisation weights, in (0, 1].
        update_probe: refine the probe too (blind reconstruction) from sweep ``probe_update_start`` on.
        object_guess: starting object (default O = 1).
        seed: seeds the random view order of each sweep.
    """
    scan = check_scan(intensities, positions, probe, object_shape)
    return _pie(
        scan, "rPIE", _rpie_weight, alpha, beta, n_iter, update_probe, probe_update_start, object_guess, seed
    )


def dm(
    intensities: object,
    positions: object,
    probe: object,
    *,
    object_shape: tuple[int, int],
    n_iter: int = 60,
    beta: float = 1.0,
    update_probe: bool = False,
    probe_update_start: int = 0,
    overlap_rounds: int = 2,
    object_guess: NDArray[np.complex128] | None = None,
) -> Reconstruction:
    """The difference map (module docstring), vectorised over all views.

    ``overlap_rounds`` is how many times Π_O alternates the object and probe updates when refining the probe.
    """
    scan = check_scan(intensities, positions, probe, object_shape)
    step = unit_interval(beta, field="beta")
    iterations = integer(n_iter, field="n_iter", minimum=1)
    start = integer(probe_update_start, field="probe_update_start", minimum=0)
    rounds = integer(overlap_rounds, field="overlap_rounds", minimum=1)
    amplitude = np.sqrt(scan.intensities)
    window = (scan.probe.shape[0], scan.probe.shape[1])
    index = view_index(scan.positions, window, scan.object_shape)
    obj = _start_object(object_guess, scan.object_shape)
    p = scan.probe.copy()
    psi = p * obj.ravel()[index]
    errors = np.empty(iterations)
    for iteration in range(iterations):
        refine = update_probe and iteration >= start
        for _ in range(rounds if refine else 1):
            obj = _overlap_object(psi, p, index, obj)
            if refine:
                p = _overlap_probe(psi, obj.ravel()[index], p)
        phi = p * obj.ravel()[index]  # Π_O(ψ)
        phi_far = fft.fft2(phi)
        errors[iteration] = data_error(phi_far, amplitude)
        reflected = 2.0 * phi_far - fft.fft2(psi)  # F[2·Π_O(ψ) - ψ], by linearity
        psi = psi + step * (fft.ifft2(project_modulus(reflected, amplitude)) - phi)
    obj = _overlap_object(psi, p, index, obj)
    log.debug("DM: %d iterations, E_data %.3g -> %.3g", iterations, errors[0], errors[-1])
    return Reconstruction(object=obj, probe=p, errors=errors, algorithm="DM")


def _power(values: NDArray[np.complex128]) -> NDArray[np.float64]:
    """|z|² without the square root of np.abs."""
    power: NDArray[np.float64] = values.real**2 + values.imag**2
    return power


def _epie_weight(step: float) -> _Weight:
    """ePIE's update weight for ``step`` = α (or β): ``α·X*/max|X|²`` (X = P, or O_j for the probe)."""

    def weight(values: NDArray[np.complex128]) -> NDArray[np.complex128]:
        result: NDArray[np.complex128] = np.conj(values) * (step / _power(values).max())
        return result

    return weight


def _rpie_weight(step: float) -> _Weight:
    """rPIE's update weight for ``step`` = α (or β): ``X* / ((1-α)|X|² + α·max|X|²)``."""

    def weight(values: NDArray[np.complex128]) -> NDArray[np.complex128]:
        power = _power(values)
        result: NDArray[np.complex128] = np.conj(values) / ((1 - step) * power + step * power.max())
        return result

    return weight


def _start_object(guess: NDArray[np.complex128] | None, shape: tuple[int, int]) -> NDArray[np.complex128]:
    if guess is None:
        return np.ones(shape, dtype=np.complex128)
    start = np.asarray(guess)
    if start.shape != shape or start.dtype.kind not in "uifc" or not np.isfinite(start).all():
        raise InvalidInput(
            f"object_guess must be a finite {shape} array (the object shape), got shape {start.shape}; "
            "leave it out to start from O = 1.",
            details={"field": "object_guess"},
        )
    return start.astype(np.complex128, copy=True)


def _pie(
    scan: Scan,
    name: str,
    rule: _Rule,
    alpha: float,
    beta: float,
    n_iter: int,
    update_probe: bool,
    probe_update_start: int,
    object_guess: NDArray[np.complex128] | None,
    seed: int,
) -> Reconstruction:
    """The sequential PIE sweep shared by ePIE and rPIE; they differ only in the update ``rule``.

    ``rule(alpha)`` weighs the object update and ``rule(beta)`` the probe update.
    """
    object_weight = rule(unit_interval(alpha, field="alpha"))
    probe_weight = rule(unit_interval(beta, field="beta"))
    iterations = integer(n_iter, field="n_iter", minimum=1)
    start = integer(probe_update_start, field="probe_update_start", minimum=0)
    amplitude = np.sqrt(scan.intensities)
    total = float(scan.intensities.sum())
    m0, m1 = scan.probe.shape
    obj = _start_object(object_guess, scan.object_shape)
    p = scan.probe.copy()
    rng = np.random.default_rng(seed)
    errors = np.empty(iterations)
    for iteration in range(iterations):
        refine = update_probe and iteration >= start
        weight = object_weight(p)  # recomputed only when the probe changes
        misfit = 0.0
        for j in rng.permutation(len(scan.positions)):
            r, c = scan.positions[j]
            view = obj[r : r + m0, c : c + m1]  # a view: updating it updates the object
            psi = p * view
            far = fft.fft2(psi)
            modulus = np.abs(far)
            residual = modulus - amplitude[j]
            misfit += float(np.vdot(residual, residual).real)
            delta = fft.ifft2(project_modulus(far, amplitude[j], modulus)) - psi
            if refine:
                probe_step = probe_weight(view) * delta  # from the object before this step
                view += weight * delta
                p += probe_step
                weight = object_weight(p)
            else:
                view += weight * delta
        errors[iteration] = misfit / total
    log.debug("%s: %d iterations, E_data %.3g -> %.3g", name, iterations, errors[0], errors[-1])
    return Reconstruction(object=obj, probe=p, errors=errors, algorithm=name)


def _overlap_object(
    psi: NDArray[np.complex128],
    probe: NDArray[np.complex128],
    index: NDArray[np.intp],
    previous: NDArray[np.complex128],
) -> NDArray[np.complex128]:
    """O = Σ_j P*·ψ_j / Σ_j |P|²; pixels no view reaches keep their previous value."""
    shape = (previous.shape[0], previous.shape[1])
    numerator = scatter_add(np.conj(probe) * psi, index, shape)
    power = np.broadcast_to(np.abs(probe) ** 2, psi.shape)
    denominator = scatter_add(power, index, shape).real
    lit = denominator > 1e-12 * denominator.max()
    updated = previous.copy()
    updated[lit] = numerator[lit] / denominator[lit]
    return updated


def _overlap_probe(
    psi: NDArray[np.complex128], views: NDArray[np.complex128], previous: NDArray[np.complex128]
) -> NDArray[np.complex128]:
    """P = Σ_j O_j*·ψ_j / Σ_j |O_j|² (the object is never zero where it matters; guard anyway)."""
    numerator = np.sum(np.conj(views) * psi, axis=0)
    denominator = np.sum(np.abs(views) ** 2, axis=0)
    lit = denominator > 1e-12 * denominator.max()
    updated = previous.copy()
    updated[lit] = numerator[lit] / denominator[lit]
    return updated
