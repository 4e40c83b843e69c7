"""The BraggNN architecture: its parameters, input/target normalisation, and the torch network.

BraggNN (Liu et al., IUCrJ 9, 104, 2022) regresses the centre of one Bragg peak from a small patch:
a 3x3 convolution, a non-local (self-attention) block, two more 3x3 convolutions and a stack of fully
connected layers (reference note §4.1; the network itself is in :mod:`._network`).

Normalisation, fixed by the paper and applied by :mod:`~beamlink.apps.braggnn.training` on both sides:

- input: each patch is min-max scaled to [0, 1] on its own (:func:`normalise_patches`), so the network
  sees shape, not brightness;
- target: the centre (x, y) in patch pixels divided by the patch size (:func:`normalise_centres`), x (the
  column) first; :func:`denormalise_centres` undoes it.

:class:`BraggNNConfig` is plain data (no torch), so it can travel in a model file's JSON header;
:func:`build_model` needs torch and imports it only when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from beamlink.apps.braggnn._torch import require_torch
from beamlink.errors import InvalidInput

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "RELEASED_FC_SIZES",
    "BraggNNConfig",
    "build_model",
    "denormalise_centres",
    "normalise_centres",
    "normalise_patches",
]

RELEASED_FC_SIZES = (16, 8, 4, 2)
"""Fully connected sizes of the authors' released ``fc16_8_4_2-sz11.pth`` (33,172 parameters)."""


@dataclass(frozen=True)
class BraggNNConfig:
    """Architecture parameters; everything a model file's header needs to rebuild the network.

    The defaults are the paper's constructor defaults, ``fc_sizes = (64, 32, 16, 8)`` (45,394 parameters),
    which the reference note measured training fastest on synthetic peaks; ``fc_sizes =``
    :data:`RELEASED_FC_SIZES` gives the authors' released configuration.
    """

    patch_size: int = 11
    fc_sizes: tuple[int, ...] = (64, 32, 16, 8)
    conv_channels: tuple[int, int, int] = (64, 32, 8)
    attention_channels: int = 32
    leaky_slope: float = 0.01

    def __post_init__(self) -> None:
        # Normalise sequences to tuples so a config read from JSON (lists) equals the one written.
        object.__setattr__(self, "fc_sizes", tuple(self.fc_sizes))
        object.__setattr__(self, "conv_channels", tuple(self.conv_channels))
        _whole(self.patch_size, "patch_size", minimum=7, hint="three 3x3 convolutions need at least 7 px")
        for name in ("fc_sizes", "conv_channels"):
            for value in getattr(self, name):
                _whole(value, name, minimum=1, hint="every layer needs at least one unit")
        if len(self.conv_channels) != 3:
            raise InvalidInput(
                f"conv_channels must list 3 channel counts, got {self.conv_channels}; "
                "the default is (64, 32, 8).",
                details={"field": "conv_channels"},
            )
        _whole(self.attention_channels, "attention_channels", minimum=1, hint="the default is 32")
        slope = self.leaky_slope
        if isinstance(slope, bool) or not isinstance(slope, int | float) or not 0 <= slope < 1:
            raise InvalidInput(
                f"leaky_slope must be a number in [0, 1), got {slope!r}; the paper uses 0.01.",
                details={"field": "leaky_slope"},
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        data = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BraggNNConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused so a typo cannot pass silently."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInput(
                f"unknown BraggNN architecture key(s) {unknown}; known keys are "
                f"{sorted(cls.__dataclass_fields__)}.",
                details={"field": unknown[0]},
            )
        try:
            return cls(**dict(data))
        except TypeError as exc:  # a list where a number belongs, or the like
            raise InvalidInput(
                f"bad BraggNN architecture {dict(data)}: {exc}", details={"field": "config"}
            ) from exc

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters, computed without torch (33,172 for the released sizes)."""
        c1, c2, c3 = self.conv_channels
        inner = self.attention_channels
        total = 9 * c1 + c1  # stem conv
        total += 3 * (c1 * inner + inner) + inner * c1 + c1  # theta, phi, g and the output 1x1 conv
        total += 9 * c1 * c2 + c2 + 9 * c2 * c3 + c3
        width = c3 * (self.patch_size - 6) ** 2
        for size in (*self.fc_sizes, 2):
            total += width * size + size
            width = size
        return total


def _whole(value: object, field: str, *, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InvalidInput(
            f"{field} must be a whole number ≥ {minimum}, got {value!r} ({hint}).", details={"field": field}
        )


def normalise_patches(patches: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """Min-max scale each patch of an ``(n, h, w)`` stack to [0, 1], as float32.

    A flat patch (max = min) becomes all zeros instead of a division by zero; the network's answer for it
    is meaningless, as any centre would be.
    """
    stack = np.asarray(patches, dtype=np.float32)
    low = stack.min(axis=(1, 2), keepdims=True)
    span = stack.max(axis=(1, 2), keepdims=True) - low
    scaled: NDArray[np.float32] = np.divide(stack - low, span, out=np.zeros_like(stack), where=span > 0)
    return scaled


def normalise_centres(centres: NDArray[np.float64], patch_size: int) -> NDArray[np.float32]:
    """(x, y) in patch pixels → the network's target, (x, y) / patch_size."""
    return (np.asarray(centres, dtype=np.float64) / patch_size).astype(np.float32)


def denormalise_centres(outputs: NDArray[np.floating[Any]], patch_size: int) -> NDArray[np.float64]:
    """The network's output → (x, y) in patch pixels, float64."""
    return np.asarray(outputs, dtype=np.float64) * patch_size


def build_model(config: BraggNNConfig | None = None) -> nn.Module:
    """A freshly initialised network for ``config`` (needs torch; seed torch first for repeatable weights)."""
    require_torch()
    from beamlink.apps.braggnn._network import BraggNN

    return BraggNN(config or BraggNNConfig())
