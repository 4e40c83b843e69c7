"""The HEDM flow steps: split_scan → search_block per block → merge_peaks → plot → record_content on the app's
own synthetic scan (3 grains, known spots), the generated flow (its Map state) driven in-process through the
flow language, and the errors a bad scan file gives (they are what the CLI and the portal show)."""

from __future__ import annotations

import json
import shutil
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from beamlink.apps.hedm import steps
from beamlink.apps.hedm.app import app, example_scan
from beamlink.apps.hedm.evaluate import match_peaks
from beamlink.apps.hedm.inputs import is_complete_scan, read_frames, read_scan, write_scan
from beamlink.apps.hedm.peaksearch import search_stack
from beamlink.apps.hedm.record import FACETS, record_content
from beamlink.apps.hedm.synthetic import make_blob_stack
from beamlink.errors import InvalidInput
from beamlink.flowlang import (
    ActionCompleted,
    ActionFailed,
    Instruction,
    RunFailed,
    RunSucceeded,
    StartAction,
    load_definition,
    start,
    step,
)
from beamlink.flowlang.parse import validate
from beamlink.protocol.search import FacetRequest, Plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FRAMES = 60  # the example: 3 Au grains on 208² px over 60 frames of 1°, 50 spots, all separable


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_scan(tmp_path_factory.mktemp("raw"), frames=FRAMES)


@pytest.fixture(scope="module")
def split(scan_file: Path) -> dict[str, Any]:
    return steps.split_scan(str(scan_file), block_size=16)


@pytest.fixture(scope="module")
def searched(
    scan_file: Path, split: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("blocks")
    return [steps.search_block(str(scan_file), block, str(folder)) for block in split["blocks"]]


@pytest.fixture(scope="module")
def merged(
    scan_file: Path, searched: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    return steps.merge_peaks(str(scan_file), searched, str(tmp_path_factory.mktemp("out") / "results"))


def test_split_checks_the_scan_and_returns_the_map_items(split: dict[str, Any]) -> None:
    assert json.loads(json.dumps(split, allow_nan=False)) == split
    assert split["n_blocks"] == 4
    assert [(b["start"], b["owned_stop"], b["stop"]) for b in split["blocks"]] == [
        (0, 16, 17),
        (16, 32, 33),
        (32, 48, 49),
        (48, 60, 60),
    ]
    assert (split["n_frames"], split["frame_shape"]) == (FRAMES, [208, 208])
    assert (split["omega_min"], split["omega_max"], split["omega_range_deg"]) == (-0.5, 59.5, 60.0)


def test_each_block_writes_its_pieces_and_returns_only_a_reference(searched: list[dict[str, Any]]) -> None:
    assert [entry["block"]["index"] for entry in searched] == [0, 1, 2, 3]
    for entry in searched:
        assert set(entry) == {"block", "file", "n_pieces", "seconds"}
        pieces = json.loads(Path(entry["file"]).read_text())
        assert len(pieces["pieces"]) == entry["n_pieces"]
        assert pieces["block"] == entry["block"]
    assert sum(entry["n_pieces"] for entry in searched) >= 50  # spots on a block boundary come in pieces


def test_merged_peaks_are_the_whole_scan_search_and_find_every_spot(
    scan_file: Path, merged: dict[str, Any]
) -> None:
    assert json.loads(json.dumps(merged, allow_nan=False)) == merged
    scan = read_scan(scan_file)
    whole = search_stack(read_frames(scan_file), threshold=scan.threshold, dark=scan.dark, domega=scan.domega)
    found = steps.read_peaks(merged["peaks"])
    assert merged["n_peaks"] == len(found) == len(whole) == 50
    for mine, reference in zip(found, whole, strict=True):
        for key in ("frame", "omega", "y", "z"):
            assert mine[key] == pytest.approx(reference[key], abs=1e-6), key  # type: ignore[literal-required]
        assert mine["intensity"] == pytest.approx(reference["intensity"], rel=1e-9)
        assert mine["n_px"] == reference["n_px"]
    truth = merged["truth"]
    # science-clients.md §3.4: recall ≥ 0.95, mean centroid error ≤ 0.1, p95 ≤ 0.2 (frames and px).
    assert truth["n_true_peaks"] == 50
    assert truth["recall"] == 1.0
    assert truth["precision"] == 1.0
    assert truth["mean_error"] <= 0.1
    assert truth["p95_error"] <= 0.2
    assert truth["n_grains"] == 3
    assert merged["n_blocks"] == 4
    assert merged["omega_range_deg"] == 60.0
    assert Path(merged["peaks"]).name == merged["peaks_name"] == f"{scan_file.stem}_peaks.csv"
    assert merged["warnings"] == []


def test_plot_writes_pngs_and_portal_plots(scan_file: Path, merged: dict[str, Any], tmp_path: Path) -> None:
    figures = steps.plot(str(scan_file), merged["peaks"], str(tmp_path / "figs"))
    assert json.loads(json.dumps(figures, allow_nan=False)) == figures
    names = [image["name"] for image in figures["images"]]
    assert names == [steps.SUMMED_FRAME_PNG, steps.PEAKS_PER_OMEGA_PNG]
    for name in names:
        assert (tmp_path / "figs" / name).read_bytes().startswith(PNG_SIGNATURE)
    per_frame, intensity = (Plot.model_validate(p) for p in figures["plots"])
    assert sum(y or 0 for y in per_frame.series[0].y) == 50
    assert len(per_frame.series[0].x) == FRAMES
    assert sum(y or 0 for y in intensity.series[0].y) == pytest.approx(merged["mean_intensity"] * 50)


def test_the_record_carries_the_facets_images_plots_and_truth(
    scan_file: Path, merged: dict[str, Any], tmp_path: Path
) -> None:
    figures = steps.plot(str(scan_file), merged["peaks"], str(tmp_path))
    content = record_content(str(scan_file), merged, figures, "portal", "hedm/scan", run_id="r-1")
    assert json.loads(json.dumps(content, allow_nan=False)) == content
    for facet in FACETS:
        assert content[facet["field_name"]] is not None, facet
    assert (content["n_peaks"], content["recall"], content["n_grains"]) == (50, 1.0, 3)
    assert content["omega_range_deg"] == 60.0
    assert content["technique"] == "HEDM"
    assert content["title"] == f"HEDM {scan_file.stem}"
    assert "50 peaks in 60 frames" in content["description"]
    assert {"HEDM", "synthetic"} <= set(content["keywords"])
    assert [i["path"] for i in content["images"]] == [
        "hedm/scan/summed_frame.png",
        "hedm/scan/peaks_per_omega.png",
    ]
    assert content["thumbnail"] == content["images"][0]
    assert content["files"][-1]["mimetype"] == "text/csv"
    assert content["run_id"] == "r-1"


# -- the generated flow, driven in-process ---------------------------------------------------------------


class InProcessSite:
    """Plays the service's part for the app's flow: compute actions call the functions here, transfers
    copy between three folders, search ingests are kept."""

    def __init__(self, root: Path) -> None:
        self.roots = {name: root / name for name in ("local", "remote", "portal")}
        for folder in self.roots.values():
            folder.mkdir(parents=True, exist_ok=True)
        self.function_ids = {key: f"fn-{i}" for i, key in enumerate(app.functions())}
        self.functions = {self.function_ids[key]: f for key, f in app.functions().items()}
        self.ingested: dict[str, Any] = {}
        self.started: list[StartAction] = []

    def act(self, action: StartAction) -> ActionCompleted | ActionFailed:
        body = action.parameters
        if action.action_url == "beamlink:compute":
            try:
                output = self.functions[body["function"]](**body["kwargs"])
            except InvalidInput as exc:
                return ActionFailed(request_id=action.request_id, cause=f"InvalidInput: {exc.message}")
            details: Any = {"results": [{"status": "success", "output": output}]}
        elif action.action_url == "beamlink:transfer":
            for item in body["items"]:
                source = self.roots[body["source"]] / item["source_path"]
                target = self.roots[body["destination"]] / item["destination_path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                if item["recursive"]:
                    shutil.copytree(source, target, dirs_exist_ok=True)
                else:
                    shutil.copyfile(source, target)
            details = {}
        else:
            assert action.action_url == "beamlink:search_ingest"
            self.ingested[body["subject"]] = body["content"]
            details = {}
        status = {"action_id": action.request_id, "status": "SUCCEEDED", "details": details}
        return ActionCompleted(request_id=action.request_id, output=status)

    def run(self, payload: dict[str, Any]) -> RunSucceeded | RunFailed:
        definition = load_definition(app.flow_definition(self.function_ids))
        now = datetime(2025, 1, 1, tzinfo=UTC)
        state, instructions = start(definition, app.prepare_input(payload), {"run_id": "run-1"}, now=now)
        queue: deque[Instruction] = deque(instructions)
        while queue:
            instruction = queue.popleft()
            if isinstance(instruction, RunSucceeded | RunFailed):
                return instruction
            if isinstance(instruction, StartAction):
                self.started.append(instruction)
                state, more = step(definition, state, self.act(instruction), now=now)
                queue.extend(more)
        raise AssertionError("the run neither succeeded nor failed")


def test_the_flow_fans_the_search_out_over_the_blocks_in_a_map_and_publishes(tmp_path: Path) -> None:
    site = InProcessSite(tmp_path)
    scan = example_scan(site.roots["local"] / "incoming", frames=FRAMES)
    outcome = site.run(
        {"scan": f"incoming/{scan.name}", "remote_root": str(site.roots["remote"]), "block_size": 12}
    )
    assert isinstance(outcome, RunSucceeded), outcome
    searched = [a for a in site.started if a.state_name == "SearchBlock"]
    assert len(searched) == 5  # 60 frames in blocks of 12
    assert {a.branch.split("[")[0] for a in searched} == {"SearchBlocks"}
    assert sorted(a.parameters["kwargs"]["block"]["index"] for a in searched) == [0, 1, 2, 3, 4]
    assert {a.parameters["endpoint"] for a in searched} == {"compute"}
    output = outcome.output
    assert [entry["block"]["index"] for entry in output["SearchBlocks"]] == [
        0,
        1,
        2,
        3,
        4,
    ]  # the Pass kept these
    (subject, content) = next(iter(site.ingested.items()))
    dataset = scan.name.rsplit(".", 1)[0]
    assert subject == f"portal:hedm/{dataset}"
    assert (content["n_peaks"], content["recall"], content["n_blocks"]) == (50, 1.0, 5)
    assert content["run_id"] == "run-1"
    for name in ("summed_frame.png", "peaks_per_omega.png", f"{dataset}_peaks.csv"):
        assert (site.roots["portal"] / "hedm" / dataset / name).is_file(), name
    assert not (
        site.roots["portal"] / "hedm" / dataset / "blocks"
    ).exists()  # block pieces stay at the facility


def test_a_nan_in_one_block_fails_the_map_with_the_frame_named(tmp_path: Path) -> None:
    site = InProcessSite(tmp_path)
    stack, truth = make_blob_stack(n_frames=24, shape=(48, 48), n_peaks=4, seed=2)
    frames = stack.astype(np.float32)
    frames[17, 3, 4] = np.nan
    write_scan(
        site.roots["local"] / "nan.h5",
        frames,
        omega0=0.0,
        domega=0.25,
        dark=truth.dark,
        threshold=truth.threshold,
    )
    outcome = site.run({"scan": "nan.h5", "remote_root": str(site.roots["remote"]), "block_size": 8})
    assert isinstance(outcome, RunFailed)
    assert outcome.state_name == "SearchBlocks"
    assert "frame 17 of" in outcome.cause
    assert "nan.h5 holds NaN or infinite values" in outcome.cause
    assert not site.ingested


def test_the_app_needs_the_scan_and_remote_root_and_its_flow_is_valid(tmp_path: Path) -> None:
    assert set(app.required_input()) == {"scan", "remote_root"}
    defaults = app.input_defaults()
    assert (defaults["index"], defaults["block_size"], defaults["threshold"]) == ("hedm", 16, None)
    ids = {key: f"fn-{i}" for i, key in enumerate(app.functions())}
    assert len(ids) == 5  # split, search_block (inside the Map), merge, plot, record
    definition = app.flow_definition(ids)
    assert validate(definition) == []
    fan = definition["States"]["SearchBlocks"]
    assert fan["Type"] == "Map"
    assert fan["ItemsPath"] == "$.SplitBlocks.details.results[0].output.blocks"
    assert fan["ItemSelector"]["block.$"] == "$$.Map.Item.Value"
    inner = fan["Iterator"]["States"]["SearchBlock"]
    assert inner["Parameters"]["function"] == ids["beamlink.apps.hedm.steps:search_block"]
    assert inner["Parameters"]["kwargs"]["block.$"] == "$.block"
    publish = next(t for t in app.tools if t.name == "Publish")
    assert [FacetRequest.model_validate(f).field_name for f in publish.facets] == [  # type: ignore[attr-defined]
        "n_peaks",
        "recall",
        "n_grains",
        "omega_range_deg",
        "sample",
    ]
    assert app.example is not None
    path = app.example(tmp_path)
    assert is_complete_scan(path)
    truncated = tmp_path / "half.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert not is_complete_scan(truncated)


# -- bad input: one readable InvalidInput naming the file and the fix ------------------------------------


def _write(path: Path, attrs: dict[str, Any] | None = None, **datasets: Any) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs.update({"domega_deg": 1.0, "threshold": 10.0, **(attrs or {})})
        for name, data in datasets.items():
            f[name] = data
    return path


GOOD = np.full((6, 16, 16), 100, dtype=np.uint16)

BAD_FILES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing", lambda p: p, "does not exist or is not a file"),
    (
        "not HDF5",
        lambda p: (p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(300)), p)[1],
        "is not a readable HDF5 file",
    ),
    ("no frames", lambda p: _write(p, stills=GOOD), "has no dataset /frames"),
    (
        "empty stack",
        lambda p: _write(p, frames=np.zeros((0, 16, 16), np.uint16)),
        "is empty (shape (0, 16, 16))",
    ),
    ("2-D frames", lambda p: _write(p, frames=GOOD[0]), "it must be (n_frames, y, z)"),
    ("boolean frames", lambda p: _write(p, frames=GOOD > 0), "has dtype bool; frames must be"),
    ("zero omega step", lambda p: _write(p, {"domega_deg": 0.0}, frames=GOOD), "never 0"),
    ("dark of another shape", lambda p: _write(p, frames=GOOD, dark=np.zeros((8, 8))), "/dark in"),
]


@pytest.mark.parametrize(("name", "make", "fragment"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_scan_file_fails_the_split_with_a_readable_reason(
    name: str, make: Callable[[Path], Path], fragment: str, tmp_path: Path
) -> None:
    path = make(tmp_path / "bad_scan.h5")
    with pytest.raises(InvalidInput) as caught:
        steps.split_scan(str(path))
    assert fragment in caught.value.message, caught.value.message
    assert "bad_scan.h5" in caught.value.message, caught.value.message


def test_a_nan_names_its_frame_in_the_scan_not_in_the_block(tmp_path: Path) -> None:
    frames = GOOD.astype(np.float64)
    frames[4, 2, 3] = np.inf
    path = _write(tmp_path / "inf.h5", frames=frames)
    blocks = steps.split_scan(str(path), block_size=3)["blocks"]
    steps.search_block(str(path), blocks[0], str(tmp_path))  # frames 0-3 are fine
    with pytest.raises(InvalidInput) as caught:
        steps.search_block(str(path), blocks[1], str(tmp_path))
    assert caught.value.message.startswith(f"frame 4 of {path} holds NaN or infinite values")
    assert "first at pixel (2, 3)" in caught.value.message
    assert caught.value.details["frame"] == 4


def test_no_threshold_anywhere_asks_for_one(tmp_path: Path) -> None:
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f.attrs["domega_deg"] = 0.25
        f["frames"] = GOOD
    block = steps.split_scan(str(path))["blocks"][0]
    with pytest.raises(InvalidInput, match=r"pass --set threshold=N"):
        steps.search_block(str(path), block, str(tmp_path))
    given = steps.search_block(str(path), block, str(tmp_path), threshold=500)
    assert given["n_pieces"] == 0


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda p, d: steps.split_scan(p, block_size=0), "block_size must be ≥ 1"),
        (lambda p, d: steps.search_block(p, {"index": 0}, d), "block must be one item of the split step"),
        (lambda p, d: steps.search_block(p, {"index": 0, "start": 0, "stop": 99}, d), "are not all in it"),
        (lambda p, d: steps.merge_peaks(p, [], d), "blocks must be the non-empty list"),
        (lambda p, d: steps.merge_peaks(p, [{"file": f"{d}/gone.json"}], d), "cannot be read from"),
        (lambda p, d: steps.merge_peaks(p, [{"file": 3}], d), "must be a non-empty path string"),
    ],
)
def test_bad_arguments_are_refused(call: Callable[[str, str], Any], fragment: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "good.h5", frames=GOOD)
    with pytest.raises(InvalidInput) as caught:
        call(str(path), str(tmp_path))
    assert fragment in caught.value.message, caught.value.message


def test_a_reversed_scan_with_a_dark_frame_and_a_threshold_map(tmp_path: Path) -> None:
    stack, truth = make_blob_stack(n_frames=16, shape=(40, 40), n_peaks=3, seed=5, domega=-0.5, omega0=90.0)
    dark = np.full(stack.shape[1:], truth.dark)
    threshold = np.full(stack.shape[1:], truth.threshold)
    path = write_scan(
        tmp_path / "rev.h5",
        stack,
        omega0=90.0,
        domega=-0.5,
        dark=dark,
        threshold=threshold,
        truth=truth.peaks,
    )
    split = steps.split_scan(str(path), block_size=5)
    assert (split["omega_min"], split["omega_max"]) == (82.25, 90.25)
    results = [steps.search_block(str(path), b, str(tmp_path / "b")) for b in split["blocks"]]
    merged = steps.merge_peaks(str(path), results, str(tmp_path / "out"))
    assert (
        merged["truth"]["recall"] == match_peaks(steps.read_peaks(merged["peaks"]), truth.peaks).recall == 1.0
    )
    assert merged["truth"]["n_grains"] is None
    assert all(p["omega"] <= 90.0 for p in steps.read_peaks(merged["peaks"]))
