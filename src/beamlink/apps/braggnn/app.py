"""The BraggNN app: peaks at the instrument → train and infer at the facility → the comparison in the portal.

States (the Gladier nnTrain flow's shape, with the inference and its baseline added):

1. ``Names``/``Paths`` work out the dataset name, where its files go, and the given model file if any;
2. ``TransferRaw`` copies the peak file from ``local_collection`` to ``remote_collection``;
3. ``Train`` (``compute`` endpoint) trains BraggNN on the file's training set and saves the model into the
   results folder, or checks the model file given as ``model`` (a path on the remote collection, e.g. the
   ``results/braggnn_model.pt`` of an earlier run) and copies it there;
4. ``Infer`` (``compute``) locates the file's peaks with the network and with the least-squares
   pseudo-Voigt fit, timing both, and scores them against the true centres when known;
5. ``Plot`` draws the error histograms and a few patches, ``GatherMetadata`` builds the record
   (``non_compute``);
6. ``TransferResults`` copies the results folder (model included) to ``portal_collection``;
7. ``Publish`` writes the record to the ``braggnn`` index, whose facets are the network's and the fit's
   mean centre errors, the speed-up, the number of patches and where the model came from.

``remote_root`` is the folder behind ``remote_collection`` as the compute endpoint's host sees it.
"""

from __future__ import annotations

from beamlink.apps.app import App
from beamlink.apps.braggnn.inputs import example_peaks, is_complete_peaks
from beamlink.apps.braggnn.record import FACETS, record_content
from beamlink.apps.braggnn.steps import locate_peaks, plot, train_model
from beamlink.apps.pipeline import LAYOUT, instrument_to_portal, record_inputs
from beamlink.apps.tools import Compute, Expr

__all__ = ["app"]

# A given model is a path on the remote collection; the compute host reads it under remote_root.
_GIVEN_MODEL = "input.remote_root + '/' + input.model.lstrip('/') if input.model else None"

_train = Compute(
    name="Train",
    comment="train BraggNN on the file's training set, or check the given model (compute endpoint)",
    function=train_model,
    endpoint="compute",
    inputs={"data": LAYOUT.work_file, "output_dir": LAYOUT.work_results, "model": Expr(_GIVEN_MODEL)},
    wait_time=7200,
    defaults_={"model": None},
)

_infer = Compute(
    name="Infer",
    comment="centres by the network and by least-squares pseudo-Voigt fits, timed and scored (compute)",
    function=locate_peaks,
    endpoint="compute",
    inputs={
        "data": LAYOUT.work_file,
        "model": f"{_train.output}.model",
        "output_dir": LAYOUT.work_results,
    },
    wait_time=7200,
)

_plot = Compute(
    name="Plot",
    comment="error histograms and patches with their centres as PNG; histogram and loss as plot data",
    function=plot,
    endpoint="non_compute",
    inputs={
        "results": f"{_infer.output}.results",
        "training": _train.output,
        "output_dir": LAYOUT.work_results,
    },
    wait_time=600,
)

_metadata = Compute(
    name="GatherMetadata",
    comment="the search record: errors, speed, model, figures and plot data",
    function=record_content,
    endpoint="non_compute",
    inputs=record_inputs(
        data=LAYOUT.work_file, training=_train.output, inference=_infer.output, figures=_plot.output
    ),
    wait_time=600,
)

app = App(
    name="braggnn",
    title="BraggNN: train, locate peaks, compare with least squares and publish",
    description=(
        "Moves a file of Bragg-peak patches (HDF5, with a training set of known centres) from the "
        "instrument to the facility, trains the BraggNN network on the compute endpoint (or uses a given "
        "model file), locates the peaks with it and with least-squares pseudo-Voigt fits, compares their "
        "accuracy and speed, draws the figures and publishes a search record with them to the portal."
    ),
    keywords=["braggnn", "bragg peak", "deep learning"],
    tools=instrument_to_portal(
        prefix="braggnn",
        file_input="peaks",
        processing=[_train, _infer, _plot],
        record=_metadata,
        facets=FACETS,
        raw_name="TransferRaw",
        raw_comment="the peak file (patches, centres, training set): instrument → facility",
        results_comment="model, centres and figures: facility → portal",
        publish_comment="the record the portal shows",
    ),
    input_help={
        "peaks": "path of the HDF5 peak file on the local collection, e.g. incoming/B001.h5",
        "remote_root": "the folder behind the remote collection on the compute endpoint's host",
        "model": "optional model file on the remote collection (e.g. braggnn/<dataset>/results/"
        "braggnn_model.pt of an earlier run); none: train one on the file's training set",
        "index": "the search index the record goes to",
        "epochs": "training epochs (Adam, cosine-decayed lr)",
        "threads": "torch threads on the compute endpoint (null: torch's default, one per core)",
        "device": "torch device for training and inference: cpu, or cuda on a GPU endpoint",
    },
    file_input="peaks",
    file_patterns=("*.h5", "*.hdf5"),
    is_complete=is_complete_peaks,
    example=example_peaks,
)
