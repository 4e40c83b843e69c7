"""Centre errors in pixels."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.braggnn.evaluate import centre_errors, error_summary, mean_centre_error


def test_errors_are_euclidean_distances() -> None:
    true = np.array([[5.0, 5.0], [1.0, 2.0], [0.0, 0.0]])
    predicted = true + np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(centre_errors(predicted, true), [5.0, 0.0, 1.0])
    assert mean_centre_error(predicted, true) == pytest.approx(2.0)


def test_summary_is_plain_floats() -> None:
    true = np.zeros((201, 2))
    predicted = np.column_stack([np.arange(201) / 100, np.zeros(201)])
    summary = error_summary(predicted, true)
    assert set(summary) == {"mean", "p50", "p75", "p95", "p99.5", "max"}
    assert all(type(v) is float for v in summary.values())
    assert summary["p50"] == pytest.approx(1.0)
    assert summary["max"] == pytest.approx(2.0)
    assert summary["mean"] == pytest.approx(1.0)
