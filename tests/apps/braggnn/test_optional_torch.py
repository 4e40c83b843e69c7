"""Without torch: the package imports and the NumPy parts work; the torch parts say how to install it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from beamlink.apps.braggnn import (
    BraggNNConfig,
    TrainedModel,
    build_model,
    fit_centres,
    load_model,
    make_patches,
    predict,
    save_model,
    train,
)
from beamlink.errors import InvalidInput


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, beamlink.apps.braggnn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


PATCHES, CENTRES = make_patches(4, seed=0)
EMPTY_MODEL = TrainedModel(config=BraggNNConfig(), state={})

CALLS: list[tuple[str, Callable[[], object]]] = [
    ("build_model", lambda: build_model()),
    ("train", lambda: train(PATCHES, CENTRES, epochs=1)),
    ("predict", lambda: predict(EMPTY_MODEL, PATCHES)),
    ("save_model", lambda: save_model(EMPTY_MODEL)),
    ("load_model", lambda: load_model(b"not read")),
]


@pytest.mark.parametrize("call", [c[1] for c in CALLS], ids=[c[0] for c in CALLS])
def test_torch_functions_name_the_install_command(
    monkeypatch: pytest.MonkeyPatch, call: Callable[[], object]
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(InvalidInput, match=r"pip install torch==2\.13\.0") as caught:
        call()
    assert "beamlink[braggnn]" in caught.value.message
    assert caught.value.details["dependency"] == "torch"


def test_numpy_parts_work_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    patches, centres = make_patches(5, seed=1)
    assert np.hypot(*(fit_centres(patches) - centres).T).mean() < 0.2
