"""PNG figures and JSON plot data; the package stays light to import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from beamlink.apps.xpcs.correlate import G2Curves, correlate_g2
from beamlink.apps.xpcs.fit import DiffusionFit, G2Fit, fit_diffusion, fit_g2, reliable_bins
from beamlink.apps.xpcs.plots import plot_data, plot_g2, plot_gamma_q2
from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, make_measurement
from beamlink.errors import InvalidInput

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Analysed = tuple[G2Curves, G2Fit, DiffusionFit, NDArray[np.bool_]]


@pytest.fixture(scope="module")
def analysed() -> Analysed:
    config = SyntheticXpcsConfig(n_frames=1024, seed=4)
    measurement, _ = make_measurement(config)
    assert measurement.frames is not None
    curves = correlate_g2(measurement.frames, measurement.partition, frame_interval_s=config.frame_interval_s)
    fit = fit_g2(curves)
    use = reliable_bins(fit, frame_interval_s=config.frame_interval_s, n_frames=config.n_frames)
    return curves, fit, fit_diffusion(curves.q2, fit.gamma_per_s, fit.gamma_err, where=use), use


def test_png_figures_are_written(tmp_path: Path, analysed: Analysed) -> None:
    curves, fit, diffusion, use = analysed
    g2_png = plot_g2(curves, tmp_path / "g2.png", fit=fit)
    gamma_png = plot_gamma_q2(curves, fit, tmp_path / "gamma.png", diffusion=diffusion, where=use)
    for path in (g2_png, gamma_png):
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 5000
    with pytest.raises(InvalidInput, match="out of range"):
        plot_g2(curves, tmp_path / "bad.png", bins=[99])


def test_plot_data_is_strict_json(analysed: Analysed) -> None:
    curves, fit, diffusion, use = analysed
    data = plot_data(curves, fit, diffusion, where=use)
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert len(back["g2"]["bins"]) == curves.g2.shape[1]
    first = back["g2"]["bins"][5]
    assert len(first["g2"]) == curves.tau_s.size
    assert first["fit"]["gamma_per_s"] == pytest.approx(fit.gamma_per_s[5])
    assert back["g2"]["tau_s"][-1] == pytest.approx(curves.tau_s[-1])
    assert back["g2"]["bins"][0]["g2_err"][-1] is None  # NaN becomes null
    assert back["gamma_vs_q2"]["used"] == [bool(u) for u in use]
    assert back["gamma_vs_q2"]["diffusion_nm2_s"] == pytest.approx(diffusion.diffusion_nm2_s)
    assert np.isfinite(back["gamma_vs_q2"]["line"]["gamma_per_s"][1])


def test_importing_the_kernels_does_not_import_matplotlib() -> None:
    code = (
        "import sys; import beamlink.apps.xpcs, beamlink.apps.xpcs.correlate, beamlink.apps.xpcs.fit, "
        "beamlink.apps.xpcs.synthetic, beamlink.apps.xpcs.metadata; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
