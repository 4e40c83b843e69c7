"""Model files that do not fit the network, and other bad input to the torch side: one InvalidInput each."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beamlink.apps.braggnn.model import RELEASED_FC_SIZES, BraggNNConfig, build_model
from beamlink.apps.braggnn.synthetic import make_patches
from beamlink.apps.braggnn.training import FORMAT, TrainedModel, load_model, predict, save_model, train
from beamlink.errors import InvalidInput

torch = pytest.importorskip("torch")

PATCHES, CENTRES = make_patches(16, seed=0)


def _state(config: BraggNNConfig) -> dict[str, Any]:
    return dict(build_model(config).state_dict())


def _file(header: object, state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    text = header if isinstance(header, str) else json.dumps(header)
    torch.save({"header": text, "state_dict": state}, buffer)
    return buffer.getvalue()


def _header(**changes: object) -> dict[str, object]:
    header: dict[str, object] = {
        "format": FORMAT,
        "format_version": 1,
        "architecture": BraggNNConfig().to_dict(),
    }
    header.update(changes)
    return header


def _saved(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


class NotWeights:
    """A pickled object: weights_only loading must refuse it rather than run its code."""


def _nan_weights() -> bytes:
    state = _state(BraggNNConfig())
    state["stem.weight"] = torch.full_like(state["stem.weight"], float("nan"))
    return _file(_header(), state)


def _renamed() -> bytes:
    state = _state(BraggNNConfig())
    state["extra.weight"] = state.pop("stem.weight")
    return _file(_header(), state)


def _mismatched_model() -> TrainedModel:
    state = {k: v.numpy() for k, v in _state(BraggNNConfig()).items()}
    return TrainedModel(config=BraggNNConfig(fc_sizes=RELEASED_FC_SIZES), state=state)


FILES: list[tuple[str, Callable[[], object], str, str]] = [
    ("random bytes", lambda: b"this is not a model file", "unreadable", "torch could not read it"),
    ("empty bytes", lambda: b"", "unreadable", "empty"),
    ("pickled object", lambda: _saved(NotWeights()), "unreadable", "torch could not read it"),
    ("bare state_dict", lambda: _saved(_state(BraggNNConfig())), "no_header", "bare state_dict"),
    ("a list", lambda: _saved([1, 2]), "no_header", "a list"),
    ("header not JSON", lambda: _file("{not json", _state(BraggNNConfig())), "header", "not JSON"),
    ("other format", lambda: _file(_header(format="other"), _state(BraggNNConfig())), "header", "'other'"),
    (
        "newer format",
        lambda: _file(_header(format_version=99), _state(BraggNNConfig())),
        "format_version",
        "upgrade beamlink",
    ),
    (
        "bad architecture",
        lambda: _file(_header(architecture={"patch_size": 3}), _state(BraggNNConfig())),
        "architecture",
        "patch_size",
    ),
    (
        "weights of another architecture",
        lambda: _file(_header(architecture={"fc_sizes": [16, 8, 4, 2]}), _state(BraggNNConfig())),
        "shapes",
        "head.0.weight (64, 200) (expected (16, 200))",
    ),
    ("renamed weight", _renamed, "shapes", "missing ['stem.weight']; unexpected ['extra.weight']"),
    ("NaN weights", _nan_weights, "weights", "stem.weight"),
]


@pytest.mark.parametrize(("name", "make", "problem", "why"), FILES, ids=[c[0] for c in FILES])
def test_bad_model_file_names_the_problem(
    name: str, make: Callable[[], object], problem: str, why: str
) -> None:
    blob = make()
    with pytest.raises(InvalidInput) as caught:
        load_model(blob)  # type: ignore[arg-type]
    assert caught.value.details == {"field": "model", "problem": problem}, name
    assert why in caught.value.message, caught.value.message
    # predict() reads model files the same way.
    with pytest.raises(InvalidInput, match="not a usable BraggNN model file"):
        predict(blob, PATCHES)  # type: ignore[arg-type]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="could not be read") as caught:
        load_model(tmp_path / "absent.pt")
    assert caught.value.details["field"] == "model"
    assert "absent.pt" in caught.value.message


CALLS: list[tuple[str, Callable[[], object], str, str]] = [
    ("load an int", lambda: load_model(3), "model", "bytes or its path"),  # type: ignore[arg-type]
    ("save a dict", lambda: save_model({"state": {}}), "model", "TrainedModel"),  # type: ignore[arg-type]
    ("predict mismatched", lambda: predict(_mismatched_model(), PATCHES), "model", "wrong shapes"),
    ("predict 9x9", lambda: predict(_mismatched_model(), PATCHES[:, :9, :9]), "patches", "Crop 11x11"),
    ("predict empty", lambda: predict(_mismatched_model(), np.zeros((0, 11, 11))), "patches", "at least one"),
    ("unknown device", lambda: train(PATCHES, CENTRES, epochs=1, device="warp9"), "device", "'cpu'"),
    ("device type", lambda: train(PATCHES, CENTRES, epochs=1, device=0), "device", "'cpu'"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("name", "call", "field", "fix"), CALLS, ids=[c[0] for c in CALLS])
def test_bad_call_names_the_field(name: str, call: Callable[[], object], field: str, fix: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()
    assert caught.value.details["field"] == field, name
    assert fix in caught.value.message, caught.value.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_says_use_cpu() -> None:
    with pytest.raises(InvalidInput, match="use device='cpu'") as caught:
        train(PATCHES, CENTRES, epochs=1, device="cuda")
    assert caught.value.details["field"] == "device"
