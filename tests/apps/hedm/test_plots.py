"""The PNG views render and are written where asked."""

from __future__ import annotations

from pathlib import Path

from beamlink.apps.hedm.peaksearch import search_stack
from beamlink.apps.hedm.plots import plot_peaks_per_omega, plot_summed_frame
from beamlink.apps.hedm.synthetic import make_blob_stack

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_summed_frame_and_peaks_per_omega_are_pngs(tmp_path: Path) -> None:
    stack, truth = make_blob_stack(seed=0, n_frames=16, shape=(64, 64), n_peaks=6)
    peaks = search_stack(stack, threshold=truth.threshold, dark=truth.dark)
    summed = plot_summed_frame(stack, peaks, dark=truth.dark, path=tmp_path / "summed.png")
    per_omega = plot_peaks_per_omega(peaks, n_frames=16, domega=truth.domega, path=tmp_path / "omega.png")
    for data, name in ((summed, "summed.png"), (per_omega, "omega.png")):
        assert data.startswith(PNG_SIGNATURE)
        assert (tmp_path / name).read_bytes() == data


def test_plots_without_peaks() -> None:
    stack, truth = make_blob_stack(seed=0, n_frames=8, shape=(32, 32), n_peaks=0)
    assert plot_summed_frame(stack, [], dark=truth.dark).startswith(PNG_SIGNATURE)
    assert plot_peaks_per_omega([], n_frames=8).startswith(PNG_SIGNATURE)
