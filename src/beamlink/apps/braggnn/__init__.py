"""BraggNN: a small CNN that regresses Bragg-peak centres, and the least-squares fit it replaces.

Liu et al., "BraggNN: fast X-ray Bragg peak analysis using deep learning", IUCrJ 9, 104 (2022). Built
from the paper's description (reference note §4), not from the authors' code.

Modules:

- :mod:`~beamlink.apps.braggnn.synthetic` — seeded 11x11 pseudo-Voigt patches and frames with known centres.
- :mod:`~beamlink.apps.braggnn.patches` — crop patches around the brightest pixel of each peak in a frame.
- :mod:`~beamlink.apps.braggnn.peakshape` — the 2-D pseudo-Voigt and its Jacobian.
- :mod:`~beamlink.apps.braggnn.fit` — the baseline: one least-squares pseudo-Voigt fit per patch.
- :mod:`~beamlink.apps.braggnn.model` — architecture parameters, normalisation, the torch network.
- :mod:`~beamlink.apps.braggnn.training` — train, predict, save and load a model file.
- :mod:`~beamlink.apps.braggnn.evaluate` — centre errors in pixels.

The ``braggnn`` app (``beamlink app run braggnn``) is built on them; importing this package does not import
these:

- :mod:`~beamlink.apps.braggnn.inputs` — the peak file (HDF5), checked on read; the app's synthetic example.
- :mod:`~beamlink.apps.braggnn.steps` — the flow's compute steps: train (or check a model), infer and fit,
  plot.
- :mod:`~beamlink.apps.braggnn.record` — the search record and the index's portal facets.
- :mod:`~beamlink.apps.braggnn.app` — the app: its tools, input and example.

PyTorch is optional (``pip install 'beamlink[braggnn]'``): importing this package, generating data,
fitting and scoring work without it; building, training, predicting, saving and loading raise
:class:`~beamlink.errors.InvalidInput` with the install command when it is missing.

Conventions: a patch is ``(row, column)`` indexed, a pixel's centre at its integer index; centres are
``(x, y)`` = (column, row) in patch pixels, x first as BraggNN outputs them. The network's own output is
that centre divided by the patch size; :func:`~beamlink.apps.braggnn.training.predict` returns pixels.

Typical use::

    from beamlink.apps.braggnn import make_patches, train, predict, mean_centre_error

    patches, centres = make_patches(20_000, seed=0)
    model = train(patches, centres, epochs=5, lr=2e-3, schedule="cosine")   # ~20 s on 2 cores
    test_patches, test_centres = make_patches(1_000, seed=1)
    mean_centre_error(predict(model, test_patches), test_centres)   # ≈ 0.045 px (least squares: 0.027)
"""

from beamlink.apps.braggnn.evaluate import centre_errors, error_summary, mean_centre_error
from beamlink.apps.braggnn.fit import PatchFits, fit_centres, fit_patches
from beamlink.apps.braggnn.model import (
    RELEASED_FC_SIZES,
    BraggNNConfig,
    build_model,
    denormalise_centres,
    normalise_centres,
    normalise_patches,
)
from beamlink.apps.braggnn.patches import extract_patches
from beamlink.apps.braggnn.peakshape import PARAMETERS, pseudo_voigt_2d
from beamlink.apps.braggnn.synthetic import PATCH_SIZE, make_frame, make_patches
from beamlink.apps.braggnn.training import TrainedModel, load_model, predict, save_model, train

__all__ = [
    "PARAMETERS",
    "PATCH_SIZE",
    "RELEASED_FC_SIZES",
    "BraggNNConfig",
    "PatchFits",
    "TrainedModel",
    "build_model",
    "centre_errors",
    "denormalise_centres",
    "error_summary",
    "extract_patches",
    "fit_centres",
    "fit_patches",
    "load_model",
    "make_frame",
    "make_patches",
    "mean_centre_error",
    "normalise_centres",
    "normalise_patches",
    "predict",
    "pseudo_voigt_2d",
    "save_model",
    "train",
]
