"""The BraggNN flow steps: train_model → locate_peaks → plot → record_content on a small synthetic peak file,
and the errors bad input gives (they are what the CLI and the portal show when the flow fails).

Measured here (512 training patches, 4 epochs, batch 32, 1 torch thread, 128 patches located, seeds 0-1,
a loaded 2-core machine): training 1-6 s; network mean error 0.16-0.17 px, least squares 0.030 px,
predicting the patch middle 1.13 px; inference 9-23 times faster than the fits.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from beamlink.apps.braggnn import steps
from beamlink.apps.braggnn.app import app
from beamlink.apps.braggnn.inputs import example_peaks, is_complete_peaks, read_peaks, write_peaks
from beamlink.apps.braggnn.model import RELEASED_FC_SIZES, BraggNNConfig
from beamlink.apps.braggnn.record import FACETS, record_content
from beamlink.apps.braggnn.synthetic import make_patches
from beamlink.errors import InvalidInput
from beamlink.protocol.search import FacetRequest, Plot

needs_torch = pytest.mark.skipif(
    find_spec("torch") is None, reason="needs torch (pip install 'beamlink[braggnn]')"
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRAINING = {"epochs": 4, "batch_size": 32, "lr": 1e-3, "threads": 1}


@pytest.fixture(scope="module")
def peak_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_peaks(tmp_path_factory.mktemp("raw"), n_train=512, n_test=128)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("out") / "new" / "results"


@pytest.fixture(scope="module")
def training(peak_file: Path, results_dir: Path) -> dict[str, Any]:
    if find_spec("torch") is None:
        pytest.skip("needs torch")
    return steps.train_model(str(peak_file), str(results_dir), **TRAINING)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def inference(peak_file: Path, results_dir: Path, training: dict[str, Any]) -> dict[str, Any]:
    return steps.locate_peaks(str(peak_file), training["model"], str(results_dir), threads=1)


@pytest.fixture(scope="module")
def figures(inference: dict[str, Any], training: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    return steps.plot(inference["results"], training, str(results_dir))


def _strict_json(value: dict[str, Any]) -> dict[str, Any]:
    back: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    assert back == value
    return back


def test_the_example_file_has_patches_centres_and_a_training_set(peak_file: Path) -> None:
    peaks = read_peaks(peak_file)
    assert peaks.patches.shape == (128, 11, 11)
    assert peaks.centres is not None
    assert peaks.centres.shape == (128, 2)
    assert peaks.train_patches is not None
    assert peaks.train_patches.shape == (512, 11, 11)
    assert peaks.synthetic
    assert is_complete_peaks(peak_file)
    assert example_peaks(peak_file.parent, n_train=512, n_test=128) == peak_file  # an intact copy is kept


@needs_torch
def test_train_saves_a_model_that_learned(training: dict[str, Any], results_dir: Path) -> None:
    _strict_json(training)
    assert training["trained"] is True
    assert training["given_model"] is None
    assert training["model"] == str(results_dir.absolute() / "braggnn_model.pt")
    assert Path(training["model"]).is_file()
    assert training["epochs"] == 4
    assert training["n_train"] == 512
    assert training["threads"] == 1
    assert training["n_parameters"] == BraggNNConfig().n_parameters
    losses = training["loss_history"]
    assert len(losses) == 4
    assert losses[-1] < losses[0]


@needs_torch
def test_inference_beats_the_centre_guess_and_is_faster_than_fitting(inference: dict[str, Any]) -> None:
    _strict_json(inference)
    assert inference["n_patches"] == 128
    assert inference["truth_known"] is True
    # The comparison: the least-squares fit is the accurate baseline (reference note: 0.026 px) ...
    assert inference["fit"]["mean"] < 0.05
    assert inference["fit_converged"] == 128
    # ... the briefly trained network is far better than guessing the patch middle (measured 0.16-0.17 px
    # against 1.13 px) ...
    assert inference["centre_baseline_px"] > 1.0
    assert inference["nn"]["mean"] < 0.4
    assert inference["nn"]["p95"] >= inference["nn"]["p50"]
    assert inference["nn_fit_deviation"]["mean"] == pytest.approx(inference["nn"]["mean"], abs=0.05)
    # ... and inference is faster than fitting (measured 9-23x on CPU; the reference note has 8x).
    assert inference["speedup"] > 1
    assert inference["speedup"] == pytest.approx(inference["fit_seconds"] / inference["nn_seconds"])
    assert inference["nn_patches_per_s"] == pytest.approx(128 / inference["nn_seconds"])
    saved = steps.read_centres(inference["results"])
    assert saved.predicted.shape == saved.fitted.shape == (128, 2)
    assert saved.centres is not None


@needs_torch
def test_a_given_model_is_checked_copied_and_used(
    peak_file: Path, training: dict[str, Any], tmp_path: Path
) -> None:
    again = steps.train_model(str(peak_file), str(tmp_path), model=training["model"])
    assert again["trained"] is False
    assert again["given_model"] == training["model"]
    assert again["seconds"] is None
    assert again["loss_history"] == pytest.approx(training["loss_history"])
    copied = Path(again["model"])
    assert copied == tmp_path.absolute() / "braggnn_model.pt"
    assert copied.read_bytes() == Path(training["model"]).read_bytes()


@needs_torch
def test_plot_draws_histograms_and_patches_and_returns_plot_data(
    figures: dict[str, Any], inference: dict[str, Any], results_dir: Path
) -> None:
    _strict_json(figures)
    names = [image["name"] for image in figures["images"]]
    assert names == ["centre_errors.png", "patches.png"]
    for name in names:
        assert (results_dir / name).read_bytes().startswith(PNG_SIGNATURE)
    histogram, loss = (Plot.model_validate(p) for p in figures["plots"])
    assert [s.name.split(" (")[0] for s in histogram.series if s.name] == ["BraggNN", "least squares"]
    for series in histogram.series:
        assert sum(v for v in series.y if v is not None) >= 0.98 * inference["n_patches"]  # 99th pct clip
    assert loss.log_y
    assert len(loss.series[0].y) == 4


@needs_torch
def test_record_holds_the_facet_fields_images_plots_and_run_id(
    peak_file: Path, training: dict[str, Any], inference: dict[str, Any], figures: dict[str, Any]
) -> None:
    content = _strict_json(
        record_content(
            str(peak_file), training, inference, figures, "portal", "braggnn/demo-B001-128p", run_id="run-1"
        )
    )
    assert content["title"] == "BraggNN demo-B001-128p"
    assert content["technique"] == "BraggNN"
    assert "BraggNN" in content["keywords"]
    assert "times faster than fitting" in content["description"]
    assert content["mean_error_px"] == inference["nn"]["mean"]
    assert content["fit_error_px"] == inference["fit"]["mean"]
    assert content["speedup"] == inference["speedup"]
    assert content["n_patches"] == 128
    assert content["model_source"] == "trained"
    for facet in FACETS:
        FacetRequest.model_validate(facet)
        assert content[facet["field_name"]] is not None, facet
    assert content["images"][0]["path"] == "braggnn/demo-B001-128p/centre_errors.png"
    assert content["thumbnail"] == content["images"][0]
    assert [f["name"] for f in content["files"][2:]] == [inference["results_name"], "braggnn_model.pt"]
    assert content["plots"] == figures["plots"]
    assert content["run_id"] == "run-1"


def test_the_app_trains_then_infers_and_publishes_with_its_facets() -> None:
    assert set(app.required_input()) == {"peaks", "remote_root"}
    defaults = app.input_defaults()
    assert defaults["index"] == "braggnn"
    assert defaults["model"] is None
    states = app.flow_definition()["States"]
    assert list(states) == [
        "Names",
        "Paths",
        "TransferRaw",
        "Train",
        "Infer",
        "Plot",
        "GatherMetadata",
        "TransferResults",
        "Publish",
    ]
    assert states["Train"]["Parameters"]["endpoint.$"] == "$.input.compute_endpoint"
    assert states["Infer"]["Parameters"]["kwargs"]["model.$"] == "$.Train.details.results[0].output.model"
    publish = next(t for t in app.tools if t.name == "Publish")
    assert publish.facets == FACETS  # type: ignore[attr-defined]


def test_the_model_path_is_relative_to_the_remote_collection() -> None:
    from beamlink.flowlang.expressions import evaluate_expression

    train = app.flow_definition()["States"]["Train"]
    text = train["Parameters"]["kwargs"]["model.="]
    given = {"input": {"remote_root": "/data/remote", "model": "braggnn/a/results/braggnn_model.pt"}}
    assert evaluate_expression(text, given, {}) == "/data/remote/braggnn/a/results/braggnn_model.pt"
    assert evaluate_expression(text, {"input": {"remote_root": "/r", "model": None}}, {}) is None


# -- bad input -------------------------------------------------------------------------------------------

PATCHES, CENTRES = make_patches(6, seed=5)


def _peaks(folder: Path, **changes: Any) -> Path:
    arrays: dict[str, Any] = {
        "patches": PATCHES,
        "centres": CENTRES,
        "train_patches": PATCHES,
        "train_centres": CENTRES,
    }
    arrays.update(changes)
    path = folder / "bad-peaks.h5"
    write_peaks(path, **arrays)
    return path


def _with_nan() -> np.ndarray:
    patches = PATCHES.copy()
    patches[3, 4, 5] = np.nan
    return patches


def _not_hdf5(folder: Path) -> Path:
    path = folder / "bad-peaks.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 512)
    return path


def _foreign(folder: Path) -> Path:
    path = folder / "bad-peaks.h5"
    with h5py.File(path, "w") as f:
        f["patches"] = PATCHES
    return path


FILES: list[tuple[str, Callable[[Path], Path], str, str]] = [
    (
        "empty stack",
        lambda d: _peaks(d, patches=np.zeros((0, 11, 11)), centres=None),
        "patches",
        "at least one",
    ),
    ("complex patches", lambda d: _peaks(d, patches=PATCHES.astype(complex)), "patches", "real numbers"),
    ("boolean patches", lambda d: _peaks(d, patches=PATCHES > 5), "patches", "boolean"),
    ("2-D patches", lambda d: _peaks(d, patches=PATCHES[0]), "patches", "Reshape it"),
    ("patches not square", lambda d: _peaks(d, patches=PATCHES[:, :, :9]), "patches", "Crop"),
    ("NaN in a patch", lambda d: _peaks(d, patches=_with_nan()), "patches", "(3, 4, 5)"),
    ("centres short", lambda d: _peaks(d, centres=CENTRES[:4]), "centres", "one (x, y) centre per patch"),
    ("training without centres", lambda d: _peaks(d, train_centres=None), "train/centres", "drop /train"),
    ("NaN in training", lambda d: _peaks(d, train_patches=_with_nan()), "train/patches", "(3, 4, 5)"),
    (
        "training of another size",
        lambda d: _peaks(d, train_patches=PATCHES[:, :9, :9]),
        "train/patches",
        "one patch size",
    ),
    ("no patches", lambda d: _peaks(d, patches=None), "patches", "has no dataset /patches"),
    ("not HDF5", _not_hdf5, "data", "not a readable HDF5 file"),
    ("another HDF5 file", _foreign, "data", "not a beamlink BraggNN peak file"),
]


@pytest.mark.parametrize(("name", "make", "field", "fix"), FILES, ids=[m[0] for m in FILES])
def test_a_bad_peak_file_is_refused_naming_the_file_and_the_fix(
    tmp_path: Path, name: str, make: Callable[[Path], Path], field: str, fix: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(InvalidInput) as caught:
        read_peaks(path)
    assert caught.value.details["field"] == field, name
    assert fix in caught.value.message, caught.value.message
    assert "bad-peaks.h5" in caught.value.message
    if find_spec("torch") is not None:  # the compute step says the same (torch is checked first)
        with pytest.raises(InvalidInput) as step:
            steps.train_model(str(path), str(tmp_path / "out"), **TRAINING)  # type: ignore[arg-type]
        assert step.value.message == caught.value.message
        assert not (tmp_path / "out").exists()


def test_a_missing_peak_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        read_peaks(tmp_path / "nowhere.h5")


@needs_torch
def test_no_training_set_and_no_model_says_what_to_give(tmp_path: Path) -> None:
    path = _peaks(tmp_path, train_patches=None, train_centres=None)
    with pytest.raises(InvalidInput, match="no training set") as caught:
        steps.train_model(str(path), str(tmp_path / "out"))
    assert caught.value.details["field"] == "model"
    assert "pass model=" in caught.value.message


def _model_file(folder: Path, *, config: BraggNNConfig, claim: BraggNNConfig | None = None) -> Path:
    """A freshly initialised model of ``config`` saved as a model file whose header claims ``claim``."""
    import torch

    from beamlink.apps.braggnn.model import build_model
    from beamlink.apps.braggnn.training import TrainedModel, save_model

    state = {k: v.detach().numpy().copy() for k, v in build_model(config).state_dict().items()}
    blob = save_model(TrainedModel(config=config, state=state))
    if claim is not None:
        content = torch.load(io.BytesIO(blob), weights_only=True)
        header = json.loads(content["header"])
        header["architecture"] = claim.to_dict()
        content["header"] = json.dumps(header)
        buffer = io.BytesIO()
        torch.save(content, buffer)
        blob = buffer.getvalue()
    path = folder / "other_model.pt"
    path.write_bytes(blob)
    return path


@needs_torch
def test_a_model_that_does_not_match_the_network_is_refused_naming_the_mismatch(tmp_path: Path) -> None:
    path = _peaks(tmp_path)
    released = BraggNNConfig(fc_sizes=RELEASED_FC_SIZES)
    model = _model_file(tmp_path, config=released, claim=BraggNNConfig())
    with pytest.raises(InvalidInput) as caught:
        steps.train_model(str(path), str(tmp_path / "out"), model=str(model))
    message = caught.value.message
    assert message.startswith("model file other_model.pt: model is not a usable BraggNN model file")
    assert "its weights do not fit the network its header describes (wrong shapes: " in message
    assert "head.0.weight (16, 200) (expected (64, 200))" in message
    assert "or leave model out to train a new one" in message
    assert caught.value.details["problem"] == "shapes"
    # The same file at the Infer step (a path given straight to it) says the same.
    with pytest.raises(InvalidInput, match="wrong shapes"):
        steps.locate_peaks(str(path), str(model), str(tmp_path / "out"))


@needs_torch
def test_a_model_for_another_patch_size_is_refused(tmp_path: Path) -> None:
    path = _peaks(tmp_path)
    model = _model_file(tmp_path, config=BraggNNConfig(patch_size=9))
    with pytest.raises(
        InvalidInput, match=r"built for 9x9 patches but peak file bad-peaks\.h5 holds 11x11"
    ) as caught:
        steps.train_model(str(path), str(tmp_path / "out"), model=str(model))
    assert caught.value.details["problem"] == "patch_size"


@needs_torch
def test_not_a_model_file_is_refused(tmp_path: Path) -> None:
    path = _peaks(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InvalidInput, match=r"model file junk\.pt: .*torch could not read it") as caught:
        steps.train_model(str(path), str(tmp_path / "out"), model=str(junk))
    assert caught.value.details["problem"] == "unreadable"


def test_without_torch_the_compute_steps_name_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    path = _peaks(tmp_path)
    for call in (
        lambda: steps.train_model(str(path), str(tmp_path / "out")),
        lambda: steps.locate_peaks(str(path), str(tmp_path / "model.pt"), str(tmp_path / "out")),
    ):
        with pytest.raises(InvalidInput, match=r"pip install torch==2\.13\.0") as caught:
            call()
        assert "BraggNN" in caught.value.message
        assert caught.value.details["dependency"] == "torch"
