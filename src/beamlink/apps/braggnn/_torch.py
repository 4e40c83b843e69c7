"""PyTorch is optional: this module says so clearly when it is missing.

Only the network, training and inference need torch; the generator, the least-squares baseline and the
metrics do not, so ``import beamlink.apps.braggnn`` and those modules work on a machine without it. Functions
that need torch call :func:`require_torch` first and import torch inside the function.
"""

from __future__ import annotations

from beamlink.errors import InvalidInput

__all__ = ["INSTALL_HINT", "require_torch"]

INSTALL_HINT = "pip install torch==2.13.0 (the CPU build), or pip install 'beamlink[braggnn]'"


def require_torch(purpose: str = "the BraggNN network") -> None:
    """Raise :class:`InvalidInput` saying how to install torch when it cannot be imported."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(
            f"{purpose} needs PyTorch, which is not installed in this environment ({exc}). "
            f"Install it with: {INSTALL_HINT}.",
            details={"dependency": "torch", "install": INSTALL_HINT},
        ) from exc
