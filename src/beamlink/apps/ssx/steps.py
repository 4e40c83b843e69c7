"""The SSX flow's compute steps: find spots and classify hits over a run (compute), then plot (non_compute).

Each step is a plain module-level function, pickled by reference, that an endpoint calls with JSON keyword
arguments (paths as strings) and whose return value is JSON (never NaN). :func:`find_spots` reads a run
file (:mod:`.inputs`), runs :func:`~beamlink.apps.ssx.classify.find_spots_run` over its stills one at a
time and writes the per-frame outcome and every spot to ``<stem>_spots.h5``; :func:`plot` reads that file
and draws the hit-rate figure and the richest still with its spots.

A missing, corrupted or malformed run file raises :class:`~beamlink.errors.InvalidInput` from
:mod:`.inputs`, whose message names the file and the fix; that message is what the CLI and the portal
show when the step fails.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import positive_float
from beamlink.apps.ssx.classify import HitFinderParams, RunResult, RunSummary, find_spots_run
from beamlink.apps.ssx.inputs import iter_stills, read_run, read_still
from beamlink.apps.ssx.scoring import match_spots
from beamlink.apps.ssx.spotfind import SpotFinderParams
from beamlink.apps.step_io import finite as _finite
from beamlink.apps.step_io import output_dir as _output_dir
from beamlink.apps.step_io import path_argument as _path_argument
from beamlink.errors import InvalidInput

__all__ = ["HIT_RATE_PNG", "SPOTS_PNG", "find_spots", "plot", "read_spot_results"]

logger = logging.getLogger(__name__)

HIT_RATE_PNG = "hit_rate.png"
SPOTS_PNG = "richest_still.png"
_MAX_PLOT_POINTS = 1000  # per series in a record: a long run is shown with a stride


def _score(
    result: RunResult, true_centers: list[NDArray[np.float64]], hit_params: HitFinderParams, distance: float
) -> dict[str, Any]:
    """Recall, precision and centroid error over the run, and how often the hit call was right."""
    errors: list[NDArray[np.float64]] = []
    n_true = n_found = n_matched = 0
    for frame, centers in zip(result.frames, true_centers, strict=True):
        match = match_spots(frame.spots.centroid_yx, centers, max_distance=distance)
        n_true, n_found, n_matched = (
            n_true + match.n_true,
            n_found + match.n_found,
            n_matched + match.n_matched,
        )
        errors.append(match.errors_px)
    error = np.concatenate(errors) if errors else np.empty(0)
    counts = np.array([c.shape[0] for c in true_centers])
    true_hits = counts >= hit_params.min_spots
    if hit_params.max_spots is not None:
        true_hits &= counts <= hit_params.max_spots
    return {
        "n_true_spots": n_true,
        "recall": n_matched / n_true if n_true else None,
        "precision": n_matched / n_found if n_found else None,
        "mean_centroid_error_px": _finite(float(error.mean())) if error.size else None,
        "p95_centroid_error_px": _finite(float(np.percentile(error, 95))) if error.size else None,
        "true_hit_rate": float(true_hits.mean()),
        "hit_accuracy": float((true_hits == result.summary.hits).mean()),
    }


def _write_results(path: Path, result: RunResult, attrs: dict[str, Any]) -> None:
    s = result.summary
    tables = [f.spots for f in result.frames]
    frame_of_spot = np.repeat(np.arange(s.n_frames), s.spots_per_frame)
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            if value is not None:
                f.attrs[key] = value
        frames = f.create_group("frames")
        frames["n_spots"] = s.spots_per_frame
        frames["hit"] = s.hits
        frames["rejected"] = s.rejected
        frames["strong_fraction"] = np.array([fr.strong_fraction for fr in result.frames], dtype=np.float64)
        spots = f.create_group("spots")
        spots["frame"] = frame_of_spot.astype(np.int64)
        spots["centroid_yx"] = np.concatenate([t.centroid_yx for t in tables]).reshape(-1, 2)
        spots["intensity"] = np.concatenate([t.intensity for t in tables])
        spots["n_pixels"] = np.concatenate([t.n_pixels for t in tables]).astype(np.int64)


def read_spot_results(path: str | Path) -> tuple[RunSummary, dict[str, Any], dict[str, NDArray[Any]]]:
    """(run summary, file attributes, spot table) of a ``<stem>_spots.h5`` written by :func:`find_spots`."""
    source = Path(path)
    try:
        with h5py.File(source, "r") as f:
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            n_spots = np.asarray(f["frames/n_spots"][()], dtype=np.int64)
            hits = np.asarray(f["frames/hit"][()], dtype=bool)
            rejected = np.asarray(f["frames/rejected"][()], dtype=bool)
            spots = {
                name: np.asarray(f[f"spots/{name}"][()]) for name in ("frame", "centroid_yx", "intensity")
            }
    except (OSError, KeyError) as exc:
        raise InvalidInput(
            f"spot results {source} cannot be read ({exc}); run the find_spots step again.",
            details={"field": "results", "path": str(source)},
        ) from exc
    n_hits = int(hits.sum())
    summary = RunSummary(
        n_frames=int(n_spots.size),
        n_hits=n_hits,
        hit_rate=n_hits / n_spots.size if n_spots.size else 0.0,
        spots_per_frame=n_spots,
        hits=hits,
        rejected=rejected,
        min_spots=int(attrs.get("min_spots", 16)),
    )
    return summary, attrs, spots


def find_spots(
    stills: str,
    output_dir: str,
    min_spots: int = 16,
    max_spots: int | None = None,
    sigma_strong: float = 3.0,
    sigma_background: float = 6.0,
    min_spot_size: int = 3,
    match_distance_px: float = 2.0,
) -> dict[str, Any]:
    """Spot finding (DIALS dispersion) and hit classification over every still of a run file.

    Writes ``<output_dir>/<stem>_spots.h5`` (per frame: spots, hit, rejected, strong-pixel fraction; per
    spot: frame, centroid, intensity, size) and returns a JSON summary::

        {"results", "results_name", "n_frames", "n_hits", "hit_rate", "n_rejected",
         "mean_spots_per_frame", "mean_spots_per_hit", "min_spots", "frame_shape": [h, w],
         "seconds", "frames_per_s", "truth": {recall, precision, mean/p95 centroid error,
         true_hit_rate, hit_accuracy, n_true_spots} or None, "warnings"}

    ``truth`` is filled when the run file carries the generator's truth (matching within
    ``match_distance_px``). A bad run file or parameter raises InvalidInput naming it.
    """
    source = _path_argument(stills, "stills")
    run = read_run(source)
    out = _output_dir(output_dir)
    spot_params = SpotFinderParams(
        sigma_strong=sigma_strong, sigma_background=sigma_background, min_spot_size=min_spot_size
    )
    hit_params = HitFinderParams(min_spots=min_spots, max_spots=max_spots)
    distance = positive_float(match_distance_px, field="match_distance_px")

    started = time.perf_counter()
    result = find_spots_run(iter_stills(source), run.mask, spot_params=spot_params, hit_params=hit_params)
    seconds = time.perf_counter() - started
    s = result.summary
    logger.debug("found spots in %s: %d frames, %d hits in %.3f s", source, s.n_frames, s.n_hits, seconds)

    truth = None if run.true_centers is None else _score(result, run.true_centers, hit_params, distance)
    warnings: list[str] = []
    if s.n_hits == 0:
        warnings.append(
            f"no still had {min_spots} spots or more: check the sample delivery or the threshold."
        )
    n_rejected = int(np.count_nonzero(s.rejected))
    if n_rejected:
        warnings.append(
            f"{n_rejected} still(s) had more than {spot_params.max_strong_pixel_fraction:.0%} strong pixels "
            "and were rejected (ice, or a bad frame)."
        )
    results_path = out.absolute() / f"{source.stem}_spots.h5"
    _write_results(
        results_path,
        result,
        {
            "source": source.name,
            "sample": run.sample,
            "min_spots": s.min_spots,
            "sigma_strong": spot_params.sigma_strong,
            "sigma_background": spot_params.sigma_background,
            "min_spot_size": spot_params.min_spot_size,
        },
    )
    height, width = run.frame_shape
    return {
        "results": str(results_path),
        "results_name": results_path.name,
        "n_frames": s.n_frames,
        "n_hits": s.n_hits,
        "hit_rate": s.hit_rate,
        "n_rejected": n_rejected,
        "mean_spots_per_frame": s.mean_spots_per_frame,
        "mean_spots_per_hit": s.mean_spots_per_hit,
        "min_spots": s.min_spots,
        "frame_shape": [height, width],
        "seconds": seconds,
        "frames_per_s": s.n_frames / seconds if seconds > 0 else None,
        "truth": truth,
        "warnings": warnings,
    }


def _plot_spots(image: NDArray[Any], centroids: NDArray[np.float64], index: int, path: Path) -> None:
    """One still on a log scale with a circle on every spot found."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.subplots()
    shown = ax.imshow(np.log1p(np.clip(image, 0, None)), cmap="magma", interpolation="nearest")
    fig.colorbar(shown, ax=ax, label="log(1 + counts)")
    if centroids.size:
        # Centroids are DIALS pixel coordinates (pixel centre at +0.5); imshow puts centres at integers.
        ax.scatter(centroids[:, 1] - 0.5, centroids[:, 0] - 0.5, s=80, facecolors="none", edgecolors="cyan")
    ax.set_title(f"still {index}: {centroids.shape[0]} spots", fontsize=10)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")


def _plot_data(summary: RunSummary) -> list[dict[str, Any]]:
    from beamlink.apps.ssx.plots import hit_rate_plot_data

    data = hit_rate_plot_data(summary)
    stride = max(1, math.ceil(summary.n_frames / _MAX_PLOT_POINTS))
    frames = [float(x) for x in data["frame"][::stride]]
    threshold = float(data["threshold"])
    return [
        {
            "title": f"Spots per still (hit: ≥ {summary.min_spots})",
            "x_label": "frame",
            "y_label": "spots",
            "log_x": False,
            "log_y": False,
            "series": [
                {"name": "spots", "x": frames, "y": [float(v) for v in data["spots"][::stride]]},
                {"name": "hit threshold", "x": [frames[0], frames[-1]], "y": [threshold, threshold]},
            ],
        },
        {
            "title": f"Hit rate over a {data['window']}-frame window (run: {summary.hit_rate:.1%})",
            "x_label": "frame",
            "y_label": "hit rate",
            "log_x": False,
            "log_y": False,
            "series": [
                {"name": "running hit rate", "x": frames, "y": data["running_hit_rate"][::stride]},
            ],
        },
    ]


def plot(results: str, stills: str, output_dir: str) -> dict[str, Any]:
    """Draw ``hit_rate.png`` (spots per still and running hit rate) and ``richest_still.png`` (the still
    with the most spots, circled) into ``output_dir``.

    Returns ``{"images": [{"name", "caption"}, ...], "plots": [...]}`` (names relative to ``output_dir``;
    plots as :class:`beamlink.protocol.search.Plot` dicts, at most ~1000 points a series).
    """
    from beamlink.apps.ssx.plots import plot_hit_rate

    summary, attrs, spots = read_spot_results(_path_argument(results, "results"))
    source = _path_argument(stills, "stills")
    out = _output_dir(output_dir)
    plot_hit_rate(summary, out / HIT_RATE_PNG)
    richest = int(np.argmax(summary.spots_per_frame))
    _plot_spots(
        read_still(source, richest), spots["centroid_yx"][spots["frame"] == richest], richest, out / SPOTS_PNG
    )
    return {
        "images": [
            {
                "name": HIT_RATE_PNG,
                "caption": (
                    f"Spots per still and running hit rate of {attrs.get('source', source.name)}: "
                    f"{summary.n_hits} hits in {summary.n_frames} stills ({summary.hit_rate:.1%}), "
                    f"a hit having ≥ {summary.min_spots} spots."
                ),
            },
            {
                "name": SPOTS_PNG,
                "caption": (
                    f"Still {richest}, the richest of the run, with its {summary.spots_per_frame[richest]} "
                    "spots circled."
                ),
            },
        ],
        "plots": _plot_data(summary),
    }
