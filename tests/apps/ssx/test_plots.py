"""Hit-rate figure and plot data; the package stays light to import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from beamlink.apps.ssx.classify import find_spots_run
from beamlink.apps.ssx.plots import hit_rate_plot_data, plot_hit_rate, running_hit_rate
from beamlink.apps.ssx.synthetic import StillConfig, make_stills


def test_hit_rate_png_and_data(tmp_path: Path) -> None:
    stack, _, mask = make_stills([0, 20, 0, 20, 20, 0], config=StillConfig(shape=(160, 160)), seed=8)
    summary = find_spots_run(stack, mask).summary
    png = plot_hit_rate(summary, tmp_path / "hits.png", window=2)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 5000
    plot = json.loads(json.dumps(hit_rate_plot_data(summary, window=2), allow_nan=False))
    assert plot["hit"] == [False, True, False, True, True, False]
    assert plot["running_hit_rate"] == [0.0, 0.5, 0.5, 0.5, 1.0, 0.5]
    assert plot["hit_rate"] == 0.5


def test_running_hit_rate_uses_the_frames_seen_so_far() -> None:
    hits = np.array([True, True, False, False, False, True])
    np.testing.assert_allclose(running_hit_rate(hits, 3), [1, 1, 2 / 3, 1 / 3, 0, 1 / 3])


def test_importing_the_kernels_does_not_import_matplotlib() -> None:
    code = (
        "import sys; import beamlink.apps.ssx, beamlink.apps.ssx.spotfind, beamlink.apps.ssx.classify, "
        "beamlink.apps.ssx.synthetic, beamlink.apps.ssx.scoring; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
