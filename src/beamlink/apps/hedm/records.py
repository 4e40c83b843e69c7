# ruff: noqa: RUF002  (Greek letters in the equations are meant)
"""The JSON-friendly records the HEDM steps exchange: plain dicts of ints, floats and lists.

They travel between the steps of a flow (a Map state fans
:func:`~beamlink.apps.hedm.peaksearch.search_block` out over :class:`FrameBlock` items and hands the
:class:`BlockResult` list to ``merge_blocks``), so they hold no NumPy scalars and survive
``json.dumps``/``json.loads`` unchanged.

Coordinates: ``frame`` is the frame index in the scan (frame ``f`` is centred on ``ω = omega0 + f·domega``);
``y`` and ``z`` are pixel coordinates along stack axes 1 and 2, a pixel's centre at its integer index.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

__all__ = ["BlobPiece", "BlockResult", "FrameBlock", "FramePeak", "Peak", "PseudoVoigtFit", "TruePeak"]


class FrameBlock(TypedDict):
    """One Map item: the block reads frames ``[start, stop)`` and owns frames ``[start, owned_stop)``.

    Consecutive blocks share ``overlap`` frames: the tail ``[owned_stop, stop)`` of block k is the head of
    block k+1, which owns it. Shared frames let the merge stitch blobs that cross a boundary by shared pixels.
    """

    index: int
    start: int
    owned_stop: int
    stop: int
    overlap: int


class BlobPiece(TypedDict):
    """The part of one 3-D blob that one block saw.

    Moments cover only the block's owned frames, so adding pieces never counts a voxel twice:
    ``n_px`` voxels, ``sum_i`` = Σ I, ``sum_i_frame`` = Σ I·f, ``sum_i_y`` = Σ I·y, ``sum_i_z`` = Σ I·z.
    ``max_i``, ``frame_min`` and ``frame_max`` cover every frame the block read (max and min do not mind
    duplicates). ``links`` are the global voxel ids ``(f·ny + y)·nz + z`` of the piece's voxels in frames
    shared with a neighbouring block; two pieces sharing a link are the same blob.
    """

    n_px: int
    sum_i: float
    sum_i_frame: float
    sum_i_y: float
    sum_i_z: float
    max_i: float
    frame_min: int
    frame_max: int
    links: list[int]


class BlockResult(TypedDict):
    """What :func:`~beamlink.apps.hedm.peaksearch.search_block` returns for one block."""

    block: FrameBlock
    shape: list[int]  # (y, z) frame shape; the merge checks that all blocks agree
    pieces: list[BlobPiece]


class PseudoVoigtFit(TypedDict):
    """A 2-D pseudo-Voigt fitted to a peak's ω-summed image (see :mod:`~beamlink.apps.hedm.pvfit`)."""

    y: float
    z: float
    amplitude: float
    fwhm_y: float
    fwhm_z: float
    mu: float
    background: float
    y_centroid: float  # the centroid the fit started from, kept for comparison
    z_centroid: float


class Peak(TypedDict):
    """One 3-D diffraction spot: intensity-weighted centroid, integrated intensity and extent in ω.

    ``intensity`` = Σ I over the blob's voxels after dark subtraction (background not subtracted, as MIDAS
    and ImageD11 report it). ``y``/``z`` are the centroid unless ``fit`` is present, in which case they are
    the pseudo-Voigt centre.
    """

    frame: float
    omega: float
    y: float
    z: float
    intensity: float
    n_px: int
    max_i: float
    frame_min: int
    frame_max: int
    omega_min: float
    omega_max: float
    fit: NotRequired[PseudoVoigtFit]


class FramePeak(TypedDict):
    """One 2-D connected region in one frame (the MIDAS per-frame step, before merging across ω)."""

    frame: int
    y: float
    z: float
    intensity: float
    n_px: int
    max_i: float


class TruePeak(TypedDict):
    """A synthetic spot as it was drawn: a 3-D Gaussian of peak density ``amplitude`` (counts per voxel).

    ``intensity`` is its analytic integral A·(2π)^{3/2}·σ_f·σ_y·σ_z. Grain-level spots also carry the grain,
    the reflection and the ring it belongs to.
    """

    frame: float
    omega: float
    y: float
    z: float
    amplitude: float
    sigma_frame: float
    sigma_y: float
    sigma_z: float
    intensity: float
    grain: NotRequired[int]
    hkl: NotRequired[list[int]]
    ring: NotRequired[int]
