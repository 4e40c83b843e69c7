"""The far-field HEDM app: a scan at the instrument → peaks searched block by block at the facility → portal.

States (gladier-hedm's FF flow up to the peak search: its ``RemotePeaksearchArgsBuilder`` →
``RemotePeaksearch`` fan-out, written here as a ``Map`` state):

1. ``Names``/``Paths`` work out the scan's name and where its files go on each collection;
2. ``TransferScan`` copies the scan file from ``local_collection`` to ``remote_collection``;
3. ``SplitBlocks`` checks the scan and cuts it into blocks of ``block_size`` frames (compute endpoint);
4. ``SearchBlocks``, a ``Map`` state, runs ``SearchBlock`` on the compute endpoint once per block, all
   blocks at once (up to ``MAX_CONCURRENT_BLOCKS``);
5. ``MergePeaks`` stitches the blocks' blobs into peaks, exactly as one whole-scan search would (compute);
6. ``Plot`` draws the summed frame and the peaks per ω, ``GatherMetadata`` builds the record (non_compute);
7. ``TransferResults`` copies the results folder to ``portal_collection``;
8. ``Publish`` writes the record (peaks, ω range, truth scores, figures, plot data) to the search index.

``remote_root`` is the folder behind ``remote_collection`` as the compute endpoint's host sees it.
Running twice on one scan replaces its files and its record.
"""

from __future__ import annotations

from pathlib import Path

from beamlink.apps.app import App
from beamlink.apps.hedm.inputs import is_complete_scan
from beamlink.apps.hedm.record import FACETS, record_content
from beamlink.apps.hedm.steps import merge_peaks, plot, search_block, split_scan
from beamlink.apps.pipeline import LAYOUT, instrument_to_portal, record_inputs
from beamlink.apps.tools import Compute, Expr, MapCompute

__all__ = ["EXAMPLE_SEED", "MAX_CONCURRENT_BLOCKS", "app", "example_scan"]

MAX_CONCURRENT_BLOCKS = 8
EXAMPLE_SEED = 1  # 3 grains, 50 spots in 60 frames, all found (recall 1.0, precision 1.0)


def example_scan(folder: Path, *, frames: int = 60, name: str = "demo-hedm-Au") -> Path:
    """A synthetic far-field scan of 3 random Au grains on a 208² detector, ``frames`` frames of 1°, with
    its spots and the number of grains as truth; written under a temporary name and renamed when whole."""
    from beamlink.apps.hedm.inputs import write_scan
    from beamlink.apps.hedm.synthetic import make_grain_stack

    path = folder / f"{name}-{frames}f.h5"
    if path.is_file() and is_complete_scan(path):
        return path
    stack, truth = make_grain_stack(n_frames=frames, n_grains=3, seed=EXAMPLE_SEED)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    write_scan(
        partial,
        stack,
        omega0=truth.omega0,
        domega=truth.domega,
        dark=truth.dark,
        threshold=truth.threshold,
        sample="Au polycrystal, 3 grains (synthetic)",
        truth=truth.peaks,
        n_grains=3,
    )
    partial.rename(path)
    return path


_split = Compute(
    name="SplitBlocks",
    comment="check the scan and cut it into blocks of frames that share one frame (the Map's items)",
    function=split_scan,
    endpoint="compute",
    inputs={"scan": LAYOUT.work_file},
    wait_time=600,
)

_search_block = Compute(
    name="SearchBlock",
    comment="3-D blobs of one block of frames above the threshold (one Map item)",
    function=search_block,
    endpoint="compute",
    inputs={"scan": LAYOUT.work_file, "block": "$.block", "blocks_dir": Expr("Paths.work_dir + '/blocks'")},
    wait_time=7200,
)

_search = MapCompute(
    name="SearchBlocks",
    comment="the peak search fanned out over the blocks of frames, on the compute endpoint",
    items=f"{_split.output}.blocks",
    item=_search_block,
    item_key="block",
    carry=("Paths",),
    max_concurrency=MAX_CONCURRENT_BLOCKS,
)

_merge = Compute(
    name="MergePeaks",
    comment="stitch the blocks' blobs into peaks, score them against the truth, write the peak list",
    function=merge_peaks,
    endpoint="compute",
    inputs={"scan": LAYOUT.work_file, "blocks": _search.result, "output_dir": LAYOUT.work_results},
    wait_time=3600,
)

_plot = Compute(
    name="Plot",
    comment="the summed frame with its peaks and the peaks per ω, as PNG and as plot data",
    function=plot,
    endpoint="non_compute",
    inputs={
        "scan": LAYOUT.work_file,
        "peaks": f"{_merge.output}.peaks",
        "output_dir": LAYOUT.work_results,
    },
    wait_time=600,
)

_metadata = Compute(
    name="GatherMetadata",
    comment="the search record: peaks, ω range, truth scores, figures and plot data",
    function=record_content,
    endpoint="non_compute",
    inputs=record_inputs(scan=LAYOUT.work_file, search=_merge.output, figures=_plot.output),
    wait_time=600,
)

app = App(
    name="hedm",
    title="HEDM: far-field peak search over frame blocks, and publish",
    description=(
        "Moves a far-field HEDM scan (HDF5 frames over ω with its dark) from the instrument to the "
        "facility, cuts it into blocks of frames, searches each block for 3-D diffraction spots on the "
        "compute endpoint in parallel (a Map state), merges the blocks into peaks exactly, draws the summed "
        "frame and the peaks per ω and publishes a search record with them to the portal."
    ),
    keywords=["hedm", "far-field", "peak search"],
    tools=instrument_to_portal(
        prefix="hedm",
        file_input="scan",
        processing=[_split, _search, _merge, _plot],
        record=_metadata,
        facets=FACETS,
        raw_name="TransferScan",
        raw_comment="the scan: instrument → facility",
        results_comment="peak list, figures: facility → portal",
        publish_comment="the record the portal shows: facets on peaks, recall, grains, ω range, sample",
    ),
    input_help={
        "scan": "path of the HDF5 scan on the local collection, e.g. incoming/ff_Au_0001.h5",
        "remote_root": "the folder behind the remote collection on the compute endpoint's host",
        "index": "the search index the record goes to",
        "block_size": "frames per block of the peak search (one Map item each)",
        "threshold": "counts above the dark a voxel needs (null: the scan file's own threshold)",
    },
    file_input="scan",
    file_patterns=("*.h5", "*.hdf5"),
    is_complete=is_complete_scan,
    example=example_scan,
)
