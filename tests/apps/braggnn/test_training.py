"""Training, prediction and model files (needs torch)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from beamlink.apps.braggnn.evaluate import error_summary, mean_centre_error
from beamlink.apps.braggnn.fit import fit_centres
from beamlink.apps.braggnn.model import RELEASED_FC_SIZES, BraggNNConfig, build_model, normalise_patches
from beamlink.apps.braggnn.synthetic import make_patches
from beamlink.apps.braggnn.training import FORMAT, TrainedModel, load_model, predict, save_model, train

torch = pytest.importorskip("torch")

SMALL = BraggNNConfig(fc_sizes=RELEASED_FC_SIZES)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_patches(512, seed=11)


@pytest.fixture(scope="module")
def small_model(data: tuple[np.ndarray, np.ndarray]) -> TrainedModel:
    return train(*data, epochs=2, batch_size=128, lr=1e-3, seed=3, config=SMALL)


def test_training_is_repeatable_and_leaves_torch_state_alone(
    data: tuple[np.ndarray, np.ndarray], small_model: TrainedModel
) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    again = train(*data, epochs=2, batch_size=128, lr=1e-3, seed=3, config=SMALL)
    # The caller's random stream is as it was.
    assert torch.equal(torch.rand(3), expected_next)
    assert again.state.keys() == small_model.state.keys()
    for name, value in small_model.state.items():
        np.testing.assert_array_equal(again.state[name], value, err_msg=name)
    assert again.history == small_model.history
    other = train(*data, epochs=2, batch_size=128, lr=1e-3, seed=4, config=SMALL)
    assert any(not np.allclose(other.state[n], v) for n, v in small_model.state.items())


def test_threads_apply_to_the_call_only(
    data: tuple[np.ndarray, np.ndarray], small_model: TrainedModel
) -> None:
    threads = torch.get_num_threads()
    one = train(*data, epochs=2, batch_size=128, lr=1e-3, seed=3, config=SMALL, threads=1)
    assert one.info["threads"] == 1
    assert torch.get_num_threads() == threads
    # Another thread count only reorders float sums: the same training, to rounding.
    for name, value in small_model.state.items():
        np.testing.assert_allclose(one.state[name], value, rtol=1e-3, atol=1e-4, err_msg=name)


def test_trained_model_is_plain_data(small_model: TrainedModel) -> None:
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in small_model.state.values())
    assert sum(v.size for v in small_model.state.values()) == SMALL.n_parameters
    assert len(small_model.history) == 2
    assert small_model.history[1] < small_model.history[0]
    assert small_model.info["n_patches"] == 512
    assert small_model.info["device"] == "cpu"


def test_predict_returns_pixel_centres_in_batches(
    data: tuple[np.ndarray, np.ndarray], small_model: TrainedModel
) -> None:
    patches, _ = data
    whole = predict(small_model, patches)
    chunked = predict(small_model, patches, batch_size=100, threads=1)
    assert whole.shape == (512, 2)
    assert whole.dtype == np.float64
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    # predict = the network on min-max normalised patches, times the patch size.
    net = build_model(SMALL)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in small_model.state.items()})
    with torch.no_grad():
        raw = net(torch.from_numpy(normalise_patches(patches[:8])[:, None])).numpy()
    np.testing.assert_allclose(whole[:8], raw * 11, rtol=1e-5)


def test_model_file_round_trip(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], small_model: TrainedModel
) -> None:
    patches, _ = data
    path = tmp_path / "braggnn.pt"
    blob = save_model(small_model, path)
    assert path.read_bytes() == blob
    for source in (blob, path, str(path)):
        loaded = load_model(source)
        assert loaded.config == SMALL
        assert loaded.history == pytest.approx(small_model.history)
        assert loaded.info["seed"] == 3
        np.testing.assert_array_equal(predict(loaded, patches[:20]), predict(small_model, patches[:20]))
    np.testing.assert_array_equal(predict(blob, patches[:20]), predict(path, patches[:20]))
    # The file is an ordinary torch checkpoint: header text plus the network's state_dict.
    import io
    import json

    content = torch.load(io.BytesIO(blob), weights_only=True)
    header = json.loads(content["header"])
    assert header["format"] == FORMAT
    assert header["architecture"]["fc_sizes"] == [16, 8, 4, 2]
    assert set(content["state_dict"]) == set(small_model.state)


@pytest.mark.slow
def test_training_reaches_a_tenth_of_a_pixel_on_held_out_patches() -> None:
    """The issue's check; reports NN vs least squares (accuracy and time) with ``pytest -s``."""
    # 100k patch presentations (~16 s on 2 idle cores); measured held-out error 0.043-0.046 px over seeds.
    patches, centres = make_patches(20_000, seed=100)
    held_out, truth = make_patches(1_000, seed=101)
    started = time.perf_counter()
    model = train(patches, centres, epochs=5, batch_size=256, lr=2e-3, schedule="cosine", seed=0, threads=1)
    trained_s = time.perf_counter() - started
    started = time.perf_counter()
    predicted = predict(model, held_out)
    predict_s = time.perf_counter() - started
    started = time.perf_counter()
    fitted = fit_centres(held_out)
    fit_s = time.perf_counter() - started
    nn, lsq = error_summary(predicted, truth), error_summary(fitted, truth)
    print(
        f"\nBraggNN: mean {nn['mean']:.3f} px, p95 {nn['p95']:.3f} px; train {trained_s:.1f} s "
        f"({torch.get_num_threads()} threads); inference {predict_s * 1e3:.0f} ms per 1000 patches\n"
        f"pseudo-Voigt LSQ: mean {lsq['mean']:.3f} px, p95 {lsq['p95']:.3f} px; {fit_s * 1e3:.0f} ms per "
        "1000 patches"
    )
    assert mean_centre_error(predicted, truth) <= 0.1
    assert mean_centre_error(np.full_like(truth, 5.0), truth) > 1.0  # the task was not trivial
