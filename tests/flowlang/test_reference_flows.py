"""The two Globus reference flows, unchanged, driven end to end with synthetic action results."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import yaml

from beamlink.flowlang import (
    ACTION_FAILED,
    PARAMETER_PATH_FAILURE,
    RunStatus,
    StartAction,
    load_definition,
)

Runner = Callable[..., Any]
Loader = Callable[[str], dict[str, Any]]

MOVE_INPUT = {
    "source": {"id": "instrument-collection", "path": "/detector/scan_0042"},
    "destination": {"id": "archive-collection", "path": "/archive/2024"},
}

TCP_INPUT = {
    "input": {
        "local_collection": "local-uuid",
        "remote_collection": "remote-uuid",
        "raw_path": "/raw/sample_7.h5",
        "work_path": "/scratch/sample_7.h5",
        "compute_endpoint": "endpoint-uuid",
        "analysis_function": "function-uuid",
        "threshold": 0.25,
        "index": "index-uuid",
    }
}


def expect_action(
    r: Any, state_name: str, provider: str, dialect: str, parameters: dict[str, Any]
) -> StartAction:
    start_action: StartAction = r.only_action()
    assert (start_action.state_name, start_action.provider, start_action.dialect) == (
        state_name,
        provider,
        dialect,
    )
    assert start_action.parameters == parameters
    return start_action


@pytest.mark.parametrize("as_yaml", [False, True])
def test_move_flow_end_to_end(run: Runner, reference_flow: Loader, as_yaml: bool) -> None:
    definition = reference_flow("move")
    source = load_definition(yaml.safe_dump(definition)) if as_yaml else definition
    r = run(source, MOVE_INPUT, context={"run_id": "move-run", "username": "ada"})

    expect_action(
        r,
        "ListSource",
        "ls",
        "globus",
        {"endpoint_id": "instrument-collection", "path": "/detector/scan_0042"},
    )
    r.complete({"DATA": [{"name": "frame_001.tif", "type": "file"}]})

    # ComputeDestination (ExpressionEval) ran inside the same step; MakeDestination uses its result
    expect_action(
        r,
        "MakeDestination",
        "mkdir",
        "globus",
        {"endpoint_id": "archive-collection", "path": "/archive/2024/scan_0042"},
    )
    r.complete({"code": "DirectoryCreated"})

    copy = expect_action(
        r,
        "Copy",
        "transfer",
        "globus",
        {
            "source_endpoint": "instrument-collection",
            "destination_endpoint": "archive-collection",
            "DATA": [
                {
                    "source_path": "/detector/scan_0042",
                    "destination_path": "/archive/2024/scan_0042",
                    "recursive": True,
                }
            ],
        },
    )
    assert copy.wait_time == 3600
    assert copy.timeout_at == r.now + timedelta(seconds=3600)
    r.complete({"task_id": "t-1", "status": "SUCCEEDED", "files_transferred": 12})

    expect_action(
        r,
        "DeleteSource",
        "delete",
        "globus",
        {"endpoint": "instrument-collection", "recursive": True, "DATA": [{"path": "/detector/scan_0042"}]},
    )
    r.complete({"task_id": "t-2"})

    assert r.state.status is RunStatus.SUCCEEDED
    output = r.output
    assert output["Target"] == {"path": "/archive/2024/scan_0042"}
    assert output["SourceListing"]["details"]["DATA"][0]["name"] == "frame_001.tif"
    assert output["Copy"]["details"]["files_transferred"] == 12
    assert output["Delete"]["status"] == "SUCCEEDED"
    assert set(output) == {"source", "destination", "SourceListing", "Target", "Mkdir", "Copy", "Delete"}
    assert [i.request_id for i in r.history if isinstance(i, StartAction)] == [
        "move-run.1.1",
        "move-run.3.1",
        "move-run.4.1",
        "move-run.5.1",
    ]
    assert r.codes() == [
        "FlowStarted",
        "ActionStarted",
        "ActionCompleted",
        "ExpressionEvalStarted",
        "ExpressionEvalCompleted",
        "ActionStarted",
        "ActionCompleted",
        "ActionStarted",
        "ActionCompleted",
        "ActionStarted",
        "ActionCompleted",
        "FlowSucceeded",
    ]


def run_to_analyse(run: Runner, reference_flow: Loader) -> Any:
    r = run(reference_flow("transfer-compute-publish"), TCP_INPUT, context={"run_id": "tcp-1"})
    transfer = expect_action(
        r,
        "TransferRaw",
        "transfer",
        "globus-legacy",
        {
            "source_endpoint_id": "local-uuid",
            "destination_endpoint_id": "remote-uuid",
            "label": "raw for run tcp-1",
            "sync_level": 3,
            "verify_checksum": True,
            "transfer_items": [
                {
                    "source_path": "/raw/sample_7.h5",
                    "destination_path": "/scratch/sample_7.h5",
                    "recursive": False,
                }
            ],
        },
    )
    assert transfer.wait_time == 600
    r.complete({"task_id": "tr-1"})
    analyse = expect_action(
        r,
        "Analyse",
        "compute",
        "globus",
        {
            "tasks": [
                {
                    "endpoint": "endpoint-uuid",
                    "function": "function-uuid",
                    "payload": {"path": "/scratch/sample_7.h5", "threshold": 0.25},
                }
            ],
        },
    )
    assert (analyse.wait_time, analyse.exception_on_action_failure) == (1800, True)
    return r


def test_transfer_compute_publish_publishes_when_peaks_are_found(run: Runner, reference_flow: Loader) -> None:
    r = run_to_analyse(run, reference_flow)
    r.complete({"results": [{"task_id": "c-1", "output": {"peaks": 3}}]})
    expect_action(
        r,
        "Publish",
        "search_ingest",
        "globus",
        {
            "search_index": "index-uuid",
            "subject": "/raw/sample_7.h5",
            "visible_to": ["public"],
            "content": {"title": "Analysis of sample_7.h5", "peaks": 3},
        },
    )
    assert r.only_action().wait_time == 120
    r.complete({"ingest": "done"})
    assert r.output["Summary"] == {"peaks": 3, "title": "Analysis of sample_7.h5"}
    assert r.output["Publish"]["details"] == {"ingest": "done"}
    assert "Outcome" not in r.output


def test_transfer_compute_publish_skips_publishing_without_peaks(run: Runner, reference_flow: Loader) -> None:
    r = run_to_analyse(run, reference_flow)
    r.complete({"results": [{"output": {"peaks": 0}}]})
    assert r.started() == []
    assert r.output["Outcome"] == {"published": False}
    assert "Publish" not in r.output
    assert "ChoiceCompleted" in r.codes()


def test_transfer_compute_publish_catches_a_failed_analysis(run: Runner, reference_flow: Loader) -> None:
    r = run_to_analyse(run, reference_flow)
    r.fail(ACTION_FAILED, "function raised ValueError")
    failed = r.failure
    assert (failed.error, failed.state_name) == ("AnalysisFailed", "AnalysisFailed")
    assert failed.cause == "The analysis function failed; see $.AnalyseError"
    assert r.state.document["AnalyseError"] == {"Error": ACTION_FAILED, "Cause": "function raised ValueError"}


def test_transfer_compute_publish_times_out_into_the_same_handler(
    run: Runner, reference_flow: Loader
) -> None:
    r = run_to_analyse(run, reference_flow)
    (timeout,) = r.wakeups()
    assert timeout.seconds == 1800
    r.fire("timeout")
    assert r.failure.error == "AnalysisFailed"
    assert r.state.document["AnalyseError"]["Error"] == "ActionTimeout"


def test_transfer_compute_publish_with_malformed_analysis_output(run: Runner, reference_flow: Loader) -> None:
    r = run_to_analyse(run, reference_flow)
    r.complete({"results": []})  # no results[0]: Summarise's reference fails, and nothing catches it there
    assert (r.failure.error, r.failure.state_name) == (PARAMETER_PATH_FAILURE, "Summarise")
