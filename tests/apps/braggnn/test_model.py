"""The architecture: parameter counts from the paper, shapes, normalisation, config round trip."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.braggnn.model import (
    RELEASED_FC_SIZES,
    BraggNNConfig,
    build_model,
    denormalise_centres,
    normalise_centres,
    normalise_patches,
)
from beamlink.errors import InvalidInput


@pytest.mark.parametrize(("fc_sizes", "count"), [(RELEASED_FC_SIZES, 33_172), ((64, 32, 16, 8), 45_394)])
def test_parameter_count_without_torch(fc_sizes: tuple[int, ...], count: int) -> None:
    assert BraggNNConfig(fc_sizes=fc_sizes).n_parameters == count


@pytest.mark.parametrize(
    "config",
    [
        BraggNNConfig(fc_sizes=RELEASED_FC_SIZES),
        BraggNNConfig(),
        BraggNNConfig(patch_size=15, fc_sizes=(8,), conv_channels=(16, 8, 4), attention_channels=4),
    ],
)
def test_network_matches_the_count_and_maps_patches_to_two_numbers(config: BraggNNConfig) -> None:
    torch = pytest.importorskip("torch")
    net = build_model(config)
    assert sum(p.numel() for p in net.parameters()) == config.n_parameters
    out = net(torch.rand(5, 1, config.patch_size, config.patch_size))
    assert out.shape == (5, 2)
    # Zero biases as in the paper, except the output layer's, which starts at the patch middle.
    biases = {name: p.detach() for name, p in net.named_parameters() if name.endswith("bias")}
    last = [name for name in biases if name.startswith("head.")][-1]  # registration order
    middle = (config.patch_size - 1) / 2 / config.patch_size
    assert torch.allclose(biases.pop(last), torch.full((2,), middle))
    assert all(float(b.abs().max()) == 0.0 for b in biases.values())


def test_attention_sees_the_whole_map() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = build_model(BraggNNConfig())
    feature = torch.zeros(1, 64, 9, 9)
    changed = feature.clone()
    changed[0, :, 0, 0] = 1.0  # one corner
    # A plain 1x1 conv would leave the far corner unchanged; the non-local block does not.
    attention = net.get_submodule("attention")
    with torch.no_grad():
        delta = attention(changed) - attention(feature)
    assert float(delta[0, :, 8, 8].abs().max()) > 0.0


def test_patches_are_min_max_normalised_each_on_its_own() -> None:
    stack = np.stack(
        [np.arange(121.0).reshape(11, 11), 5 + 2 * np.arange(121.0).reshape(11, 11), np.full((11, 11), 3.0)]
    )
    scaled = normalise_patches(stack)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled[0], scaled[1], atol=1e-7)
    assert scaled[0].min() == 0.0
    assert scaled[0].max() == 1.0
    np.testing.assert_array_equal(scaled[2], 0.0)  # a flat patch, no division by zero


def test_centres_are_scaled_by_the_patch_size_x_first() -> None:
    centres = np.array([[2.2, 8.8]])
    target = normalise_centres(centres, 11)
    np.testing.assert_allclose(target, [[0.2, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(denormalise_centres(target, 11), centres, rtol=1e-6)


def test_config_round_trips_through_json_types() -> None:
    config = BraggNNConfig(fc_sizes=RELEASED_FC_SIZES)
    data = config.to_dict()
    assert data["fc_sizes"] == [16, 8, 4, 2]
    assert BraggNNConfig.from_dict(data) == config


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"patch_size": 5}, "patch_size"),
        ({"fc_sizes": [16, 0]}, "fc_sizes"),
        ({"conv_channels": [64, 32]}, "conv_channels"),
        ({"leaky_slope": 2.0}, "leaky_slope"),
        ({"patch_sise": 11}, "patch_sise"),
    ],
)
def test_bad_config_names_the_key(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        BraggNNConfig.from_dict(data)
    assert caught.value.details["field"] == field
