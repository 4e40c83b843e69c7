"""The reconstruction PNG renders and is written where asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from beamlink.apps.ptycho.compare import illumination_mask
from beamlink.apps.ptycho.plots import plot_reconstruction
from beamlink.apps.ptycho.synthetic import make_scan


def test_reconstruction_png(tmp_path: Path) -> None:
    data, truth = make_scan(n=64, seed=0)
    mask = illumination_mask(truth.probe, data.positions, data.object_shape)
    png = plot_reconstruction(truth.object, truth.probe, mask=mask, title="truth", path=tmp_path / "r.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert (tmp_path / "r.png").read_bytes() == png
    assert plot_reconstruction(np.ones((8, 8), complex), np.ones((4, 4), complex)).startswith(b"\x89PNG")
