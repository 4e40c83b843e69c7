"""Train BraggNN on patches with known centres, predict centres, and save or load a model file.

Shaped to become compute functions: arguments and results are NumPy arrays, bytes and plain data; nothing
needs a live torch object between calls. :class:`TrainedModel` keeps its weights as NumPy arrays, so it
pickles without torch; :func:`save_model` turns it into bytes and :func:`load_model` back.

Recipe (reference note §4.2): MSE on normalised centres (:mod:`~beamlink.apps.braggnn.model`), Adam,
mini-batches shuffled each epoch. Everything random — initial weights and the batch order — comes from
``seed``, inside :func:`torch.random.fork_rng`, so training is repeatable on the CPU (bit for bit at the
same thread count) and leaves the caller's torch random state untouched. On a GPU some kernels are
non-deterministic: results agree closely but not bit for bit. ``threads=None`` leaves torch's thread count
as the caller or ``OMP_NUM_THREADS`` set it; a number sets it for the call and restores it afterwards.

A model file is :func:`torch.save` of ``{"header": <JSON text>, "state_dict": {name: tensor}}``: the
state_dict is the network's own, and the header (:data:`FORMAT`, :data:`FORMAT_VERSION`, the architecture
of :class:`~beamlink.apps.braggnn.model.BraggNNConfig`, versions and training settings) rebuilds the
network. Files are read with ``weights_only=True``, so loading one cannot run code.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from beamlink import __version__
from beamlink.apps.braggnn._checks import centre_array, integer, patch_stack, positive_number
from beamlink.apps.braggnn._torch import require_torch
from beamlink.apps.braggnn.model import (
    BraggNNConfig,
    denormalise_centres,
    normalise_centres,
    normalise_patches,
)
from beamlink.errors import InvalidInput

if TYPE_CHECKING:
    import torch

    from beamlink.apps.braggnn._network import BraggNN

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SCHEDULES",
    "TrainedModel",
    "load_model",
    "predict",
    "save_model",
    "train",
]

log = logging.getLogger(__name__)

FORMAT = "beamlink.braggnn"
"""The ``format`` entry of a model file's header."""
FORMAT_VERSION = 1
"""Bumped when the file layout changes; a reader refuses versions newer than its own."""
SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules: the paper's constant rate, or cosine decay to 0 over the run (per batch)."""


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained network as plain data.

    Attributes:
        config: the architecture.
        state: the network's state_dict as float32 NumPy arrays, by parameter name.
        history: mean training loss (MSE of normalised centres) after each epoch.
        info: JSON-ready training settings and facts (epochs, batch size, lr, seed, patches, device,
            threads, seconds, torch version).
    """

    config: BraggNNConfig
    state: dict[str, NDArray[np.float32]]
    history: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)


def train(
    patches: object,
    centres: object,
    *,
    epochs: int = 25,
    batch_size: int = 256,
    lr: float = 3e-4,
    schedule: str = "constant",
    seed: int = 0,
    device: str = "cpu",
    config: BraggNNConfig | None = None,
    threads: int | None = None,
) -> TrainedModel:
    """Train a fresh network on ``patches`` ``(n, p, p)`` (raw counts) and their true ``centres`` (n, 2).

    Centres are (x, y) in patch pixels, a pixel's centre at its integer index, and must lie on the patch.
    The defaults are the paper's recipe as the reference note ran it (Adam at a constant lr 3·10⁻⁴, batch
    256, 25 epochs: ≈ 0.045 px on 40,000 synthetic patches). For short runs a larger ``lr`` (10⁻³) gets
    there in fewer epochs; ``schedule="cosine"`` decays it to 0 over the run instead of keeping it.
    """
    arch = config or BraggNNConfig()
    stack = patch_stack(patches, patch_size=arch.patch_size)
    targets = centre_array(centres, n_patches=stack.shape[0])
    outside = (targets < -0.5) | (targets > arch.patch_size - 0.5)
    if outside.any():
        first = int(np.argwhere(outside)[0][0])
        raise InvalidInput(
            f"centres[{first}] = {targets[first].tolist()} lies outside the {arch.patch_size}-pixel patch; "
            "give centres in patch pixels (x, y), not normalised or in frame coordinates.",
            details={"field": "centres", "index": first},
        )
    n_epochs = integer(epochs, field="epochs", hint="The reference note trains 25 epochs.")
    batch = integer(batch_size, field="batch_size", hint="Use 256.")
    rate = positive_number(lr, field="lr", hint="Use 3e-4.")
    if schedule not in SCHEDULES:
        raise InvalidInput(
            f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}.", details={"field": "schedule"}
        )
    seed = integer(seed, field="seed", minimum=0)
    n_threads = _thread_count(threads)
    require_torch("training BraggNN")
    import torch

    target = _device(device)
    inputs = torch.from_numpy(normalise_patches(stack)[:, None]).to(target)
    labels = torch.from_numpy(normalise_centres(targets, arch.patch_size)).to(target)
    n = inputs.shape[0]
    history: list[float] = []
    started = time.perf_counter()
    with _threads(n_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        order = torch.Generator().manual_seed(seed)
        net = _fresh_network(arch).to(target)
        optimiser = torch.optim.Adam(net.parameters(), lr=rate)
        steps = n_epochs * -(-n // batch)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
            if schedule == "cosine"
            else None
        )
        loss_fn = torch.nn.MSELoss()
        net.train()
        for epoch in range(n_epochs):
            total = torch.zeros((), device=target)  # summed on the device: no host sync per step
            for index in torch.split(torch.randperm(n, generator=order), batch):
                index = index.to(target)
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(net(inputs[index]), labels[index])
                loss.backward()
                optimiser.step()
                if scheduler is not None:
                    scheduler.step()
                total += loss.detach() * len(index)
            history.append(float(total) / n)
            log.debug("epoch %d/%d: loss %.3g", epoch + 1, n_epochs, history[-1])
        used_threads = torch.get_num_threads()
    seconds = time.perf_counter() - started
    info = {
        "epochs": n_epochs,
        "batch_size": batch,
        "lr": rate,
        "schedule": schedule,
        "seed": seed,
        "n_patches": int(n),
        "device": str(target),
        "threads": used_threads,
        "seconds": round(seconds, 3),
        "torch_version": str(torch.__version__),
    }
    state = {name: value.detach().cpu().numpy().copy() for name, value in net.state_dict().items()}
    return TrainedModel(config=arch, state=state, history=tuple(history), info=info)


def predict(
    model: TrainedModel | bytes | str | os.PathLike[str],
    patches: object,
    *,
    batch_size: int = 4096,
    device: str = "cpu",
    threads: int | None = None,
) -> NDArray[np.float64]:
    """``(n, 2)`` centres (x, y) in patch pixels for ``patches`` ``(n, p, p)`` (raw counts).

    ``model`` is a :class:`TrainedModel`, a model file's bytes, or its path.
    """
    trained = model if isinstance(model, TrainedModel) else load_model(model)
    stack = patch_stack(patches, patch_size=trained.config.patch_size)
    batch = integer(batch_size, field="batch_size", hint="Use 4096.")
    n_threads = _thread_count(threads)
    require_torch("BraggNN inference")
    import torch

    target = _device(device)
    net = _network_with(trained).to(target).eval()
    inputs = torch.from_numpy(normalise_patches(stack)[:, None])
    outputs = []
    with _threads(n_threads), torch.inference_mode():
        for chunk in torch.split(inputs, batch):
            outputs.append(net(chunk.to(target)).cpu())
    return denormalise_centres(torch.cat(outputs).numpy(), trained.config.patch_size)


def save_model(model: TrainedModel, path: str | os.PathLike[str] | None = None) -> bytes:
    """The model file's bytes (see the module docstring); also written to ``path`` when one is given."""
    if not isinstance(model, TrainedModel):
        raise InvalidInput(
            f"model must be a TrainedModel (from train() or load_model()), got {type(model).__name__}.",
            details={"field": "model"},
        )
    require_torch("saving a BraggNN model")
    import torch

    _check_state(model.config, model.state)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": model.config.to_dict(),
        "beamlink_version": __version__,
        "torch_version": str(torch.__version__),
        "history": list(model.history),
        "training": model.info,
    }
    state = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in model.state.items()}
    try:
        text = json.dumps(header)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"model.info and model.history must hold JSON-ready values to go in the file header ({exc}).",
            details={"field": "model"},
        ) from exc
    buffer = io.BytesIO()
    torch.save({"header": text, "state_dict": state}, buffer)
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def load_model(source: bytes | str | os.PathLike[str]) -> TrainedModel:
    """Read a model file (its bytes or its path) and check it against the network its header describes.

    Raises :class:`InvalidInput` with ``details["field"] == "model"`` and ``details["problem"]`` one of
    ``unreadable``, ``no_header``, ``header``, ``format_version``, ``architecture``, ``shapes`` or
    ``weights`` when the file is not a BraggNN model this version can use.
    """
    data = _read_source(source)
    require_torch("loading a BraggNN model")
    import torch

    try:
        # weights_only refuses pickled code; anything torch cannot read raises one of several exception
        # types (UnpicklingError, RuntimeError for a bad zip, EOFError, ...), all meaning "not a model file".
        content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _bad_model("unreadable", f"torch could not read it as a saved state ({exc})") from exc
    if not isinstance(content, dict) or "header" not in content or "state_dict" not in content:
        bare = isinstance(content, dict) and all(isinstance(v, torch.Tensor) for v in content.values())
        what = "a bare state_dict" if bare else f"a {type(content).__name__}"
        raise _bad_model(
            "no_header",
            f"it holds {what}, not the {{'header', 'state_dict'}} pair that save_model() writes; "
            "weights from other BraggNN code cannot be used without their architecture header",
        )
    try:
        header = json.loads(content["header"])
    except (TypeError, ValueError) as exc:
        raise _bad_model("header", f"its header is not JSON text ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else header
        raise _bad_model("header", f"its header's format is {found!r}, not {FORMAT!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise _bad_model(
            "format_version",
            f"its format_version is {version!r} and this beamlink reads 1..{FORMAT_VERSION}; "
            "upgrade beamlink to read files from a newer one",
        )
    architecture = header.get("architecture")
    if not isinstance(architecture, dict):
        raise _bad_model("architecture", "its header has no 'architecture' object")
    try:
        config = BraggNNConfig.from_dict(architecture)
    except InvalidInput as exc:
        raise _bad_model("architecture", f"its header's architecture is invalid: {exc.message}") from exc
    raw = content["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise _bad_model("shapes", "its state_dict is not a mapping of names to tensors")
    state = {str(name): value.detach().cpu().numpy().copy() for name, value in raw.items()}
    _check_state(config, state)
    history = header.get("history", [])
    info = header.get("training", {})
    return TrainedModel(
        config=config,
        state=state,
        history=tuple(float(v) for v in history) if isinstance(history, list) else (),
        info=dict(info) if isinstance(info, dict) else {},
    )


def _bad_model(problem: str, why: str) -> InvalidInput:
    return InvalidInput(
        f"model is not a usable BraggNN model file: {why}. Pass bytes or a path written by save_model().",
        details={"field": "model", "problem": problem},
    )


def _read_source(source: object) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise InvalidInput(
                f"model file {os.fspath(source)!r} could not be read ({exc.strerror or exc}); "
                "pass the path of a file written by save_model(), or its bytes.",
                details={"field": "model", "problem": "unreadable"},
            ) from exc
    else:
        raise InvalidInput(
            f"model must be a TrainedModel, a model file's bytes or its path, got {type(source).__name__}.",
            details={"field": "model"},
        )
    if not data:
        raise _bad_model("unreadable", "it is empty (0 bytes)")
    return data


def _fresh_network(config: BraggNNConfig) -> BraggNN:
    from beamlink.apps.braggnn._network import BraggNN

    return BraggNN(config)


def _expected_shapes(config: BraggNNConfig) -> dict[str, tuple[int, ...]]:
    import torch

    with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the caller's RNG as it was
        net = _fresh_network(config)
    return {name: tuple(value.shape) for name, value in net.state_dict().items()}


def _check_state(config: BraggNNConfig, state: dict[str, NDArray[Any]]) -> None:
    """Raise InvalidInput (field ``model``) unless ``state`` fits the network ``config`` describes."""
    expected = _expected_shapes(config)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{name} {tuple(np.shape(state[name]))} (expected {shape})"
        for name, shape in expected.items()
        if name in state and tuple(np.shape(state[name])) != shape
    )
    if missing or unexpected or wrong:
        parts = [
            f"missing {missing[:3]}" if missing else "",
            f"unexpected {unexpected[:3]}" if unexpected else "",
            f"wrong shapes: {', '.join(wrong[:3])}" if wrong else "",
        ]
        raise _bad_model(
            "shapes",
            f"its weights do not fit the network its header describes ({'; '.join(p for p in parts if p)})",
        )
    for name in expected:
        value = np.asarray(state[name])
        if value.dtype.kind != "f" or not np.isfinite(value).all():
            raise _bad_model("weights", f"its weight {name!r} is not finite floating point ({value.dtype})")


def _network_with(model: TrainedModel) -> BraggNN:
    import torch

    _check_state(model.config, model.state)
    with torch.random.fork_rng(devices=[]):
        net = _fresh_network(model.config)
    net.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in model.state.items()})
    return net


def _device(device: object) -> torch.device:
    import torch

    try:
        if not isinstance(device, str | torch.device):
            raise TypeError(f"got a {type(device).__name__}")
        target = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"device {device!r} is not a torch device ({exc}); use 'cpu' or 'cuda'.",
            details={"field": "device"},
        ) from exc
    if target.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(
            f"device {device!r} asks for a CUDA GPU but torch sees none here "
            f"(torch {torch.__version__}); use device='cpu'.",
            details={"field": "device"},
        )
    return target


def _thread_count(threads: object) -> int | None:
    if threads is None:
        return None
    return integer(threads, field="threads", hint="Use the number of cores the task may use, or None.")


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Use ``count`` torch threads inside the block (None: leave the setting alone)."""
    import torch

    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
