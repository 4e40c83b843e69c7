"""ls, mkdir and wait_for_files as flow actions, against real collection agents through a real service;
first the body checks, which need neither."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beamlink.errors import InvalidInput, PathOutsideCollection
from beamlink.protocol.collections import RuleCreate
from beamlink.protocol.flows import RunInfo
from beamlink.service.flows.providers.collection_ops import parse_ls, parse_mkdir, parse_wait
from e2e_helpers import Person

slow = pytest.mark.slow


# -- bodies (no service needed) ----------------------------------------------------------------------


def test_bodies_of_both_dialects_name_the_same_request() -> None:
    ours = parse_ls({"collection": "raw", "path": "scan 1/", "show_hidden": False, "limit": 5}, "beamlink")
    assert (ours.collection, ours.paths, ours.show_hidden, ours.limit) == ("raw", ["scan 1"], False, 5)
    globus = parse_ls({"endpoint_id": "c-1", "path": "/~/scan 1", "path_only": True}, "globus")
    assert (globus.collection, globus.paths, globus.path_only) == ("c-1", ["scan 1"], True)
    assert parse_ls({"endpoint_id": "c-1"}, "globus-legacy").paths == [""]  # the root, /~/
    assert parse_mkdir({"endpoint_id": "c-1", "path": "/out/new"}, "globus").paths == ["out/new"]
    made = parse_mkdir({"collection": "raw", "path": "a/b", "parents": True}, "beamlink")
    assert (made.paths, made.parents) == (["a/b"], True)
    assert parse_wait({"collection": "raw", "path": "x.h5"}, "beamlink").paths == ["x.h5"]
    assert parse_wait({"collection": "raw", "paths": ["a", "b/"], "poll_seconds": 0.5}, "beamlink").paths == [
        "a",
        "b",
    ]


@pytest.mark.parametrize(
    ("parse", "body", "dialect", "message"),
    [
        (parse_ls, {"path": "x"}, "beamlink", "field 'collection' is required"),
        (parse_ls, {"collection": "raw", "path": "x"}, "globus", "unknown field 'collection'"),
        (parse_ls, {"collection": "raw", "limit": 0}, "beamlink", "'limit'"),
        (parse_ls, {"endpoint_id": "c", "show_hidden": "yes"}, "globus", "'show_hidden'"),
        (parse_mkdir, {"collection": "raw"}, "beamlink", "field 'path' is required"),
        (
            parse_mkdir,
            {"endpoint_id": "c", "path": "x", "parents": True},
            "globus",
            "unknown field 'parents'",
        ),
        (parse_wait, {"collection": "raw"}, "beamlink", "give 'paths'"),
        (parse_wait, {"collection": "raw", "path": "a", "paths": ["b"]}, "beamlink", "exactly one"),
        (parse_wait, {"collection": "raw", "paths": []}, "beamlink", "'paths'"),
        (parse_wait, {"collection": "raw", "path": "a", "poll_seconds": 0}, "beamlink", "'poll_seconds'"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(
    parse: Callable[[Any, str], Any], body: dict[str, Any], dialect: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(body, dialect)


def test_paths_may_not_leave_the_collection() -> None:
    with pytest.raises(PathOutsideCollection):
        parse_ls({"endpoint_id": "c", "path": "/~/../etc"}, "globus")


# -- through a real service --------------------------------------------------------------------------


def one_action(url: str, parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "StartAt": "Act",
        "States": {
            "Act": {
                "Type": "Action",
                "ActionUrl": url,
                "Parameters": parameters,
                "ResultPath": "$.result",
                "WaitTime": 120,
                "End": True,
                **extra,
            }
        },
    }


def run_one(
    person: Person, url: str, parameters: dict[str, Any], body: dict[str, Any] | None = None
) -> RunInfo:
    flow = person.client.create_flow(f"one {url}", one_action(url, parameters))
    run = person.client.run_flow(flow.id, body or {})
    return person.client.wait_run(run.run_id, timeout=60)


@pytest.fixture
def instrument(tmp_path: Path) -> Path:
    root = tmp_path / "instrument"
    (root / "scan 001").mkdir(parents=True)
    (root / "scan 001" / "frame.h5").write_bytes(b"x" * 100)
    (root / "notes.txt").write_text("hello")
    (root / ".secret").write_text("hidden")
    return root


@slow
def test_mkdir_ls_and_wait_for_files_in_one_flow(
    make_person: Callable[..., Person], instrument: Path
) -> None:
    alice = make_person("alice")
    alice.configure_collection("instrument", instrument)
    collection_id = alice.start_collection("instrument")
    definition = {
        "StartAt": "MakeDir",
        "States": {
            "MakeDir": {
                "Type": "Action",
                "ActionUrl": "beamlink:mkdir",
                "Parameters": {"collection": "instrument", "path": "out/processed", "parents": True},
                "ResultPath": "$.made",
                "Next": "List",
            },
            "List": {
                "Type": "Action",
                "ActionUrl": "https://transfer.actions.globus.org/ls",
                "Parameters": {"endpoint_id.$": "$.collection", "path": "/~/", "show_hidden": False},
                "ResultPath": "$.listed",
                "Next": "Wait",
            },
            "Wait": {
                "Type": "Action",
                "ActionUrl": "beamlink:wait_for_files",
                "Parameters": {"collection.$": "$.collection", "paths": ["notes.txt", "out/processed"]},
                "ResultPath": "$.waited",
                "End": True,
            },
        },
    }
    flow = alice.client.create_flow("collection ops", definition)
    run = alice.client.run_flow(flow.id, {"collection": collection_id})
    done = alice.client.wait_run(run.run_id, timeout=60)
    assert done.status == "SUCCEEDED", done
    assert (instrument / "out" / "processed").is_dir()
    made = done.output["made"]["details"]
    assert made["code"] == "DirectoryCreated"
    assert made["endpoint_id"] == collection_id
    listed = done.output["listed"]["details"]
    entries = {e["name"]: e for e in listed["DATA"]}
    assert sorted(entries) == ["notes.txt", "out", "scan 001"]  # .secret hidden
    assert entries["scan 001"]["is_folder"] is True
    assert entries["notes.txt"]["is_folder"] is False
    assert entries["notes.txt"]["size"] == 5
    assert entries["notes.txt"]["last_modified"].endswith("+00:00")
    assert listed["path"] == "/~/"
    found = done.output["waited"]["details"]["found"]
    assert [(f["path"], f["is_folder"]) for f in found] == [("notes.txt", False), ("out/processed", True)]

    names = run_one(alice, "beamlink:ls", {"collection": "instrument", "path": "scan 001", "path_only": True})
    assert names.output["result"]["details"]["DATA"] == [{"name": "frame.h5", "is_folder": False}]


@slow
def test_agent_errors_and_refusals_fail_the_run_with_the_reason(
    make_person: Callable[..., Person], instrument: Path
) -> None:
    alice, bob = make_person("alice"), make_person("bob")
    alice.configure_collection("instrument", instrument)
    collection_id = alice.start_collection("instrument")

    missing = run_one(alice, "beamlink:ls", {"collection": "instrument", "path": "no such dir"})
    assert missing.status == "FAILED"
    assert missing.error == "ActionFailedException"
    assert "does not exist" in (missing.cause or "")

    exists = run_one(alice, "beamlink:mkdir", {"collection": "instrument", "path": "scan 001"})
    assert exists.status == "FAILED"
    assert "already exists" in (exists.cause or "")

    unknown = run_one(alice, "beamlink:ls", {"collection": "nonexistent"})
    assert unknown.status == "FAILED"
    assert unknown.error == "ActionUnableToRun"
    assert "not found" in (unknown.cause or "")

    bad = run_one(alice, "beamlink:ls", {"collection": "instrument", "lmit": 3})
    assert bad.error == "ActionUnableToRun"
    assert "unknown field 'lmit'" in (bad.cause or "")

    alice.client.add_collection_rule(
        "instrument", RuleCreate(principal_type="user", principal=bob.username, permission="read")
    )
    readable = run_one(bob, "beamlink:ls", {"collection": collection_id})
    assert readable.status == "SUCCEEDED", readable
    refused = run_one(bob, "beamlink:mkdir", {"collection": collection_id, "path": "bob-was-here"})
    assert refused.error == "ActionUnableToRun"
    assert "you may not write" in (refused.cause or "")
    assert not (instrument / "bob-was-here").exists()


@slow
def test_wait_for_files_waits_for_a_file_that_appears_later(
    make_person: Callable[..., Person], instrument: Path
) -> None:
    alice = make_person("alice")
    alice.configure_collection("instrument", instrument)
    alice.start_collection("instrument")
    flow = alice.client.create_flow(
        "wait",
        one_action(
            "beamlink:wait_for_files", {"collection": "instrument", "path": "late.h5", "poll_seconds": 0.2}
        ),
    )
    run = alice.client.run_flow(flow.id, {})
    time.sleep(1.0)
    assert alice.client.get_run(run.run_id).status == "ACTIVE"
    (instrument / "late.h5").write_bytes(b"data")
    done = alice.client.wait_run(run.run_id, timeout=30)
    assert done.status == "SUCCEEDED", done
    (entry,) = done.output["result"]["details"]["found"]
    assert (entry["path"], entry["size"]) == ("late.h5", 4)


@slow
def test_an_offline_collection_makes_the_run_inactive_until_it_returns(
    make_person: Callable[..., Person], instrument: Path
) -> None:
    alice = make_person("alice")
    alice.configure_collection("instrument", instrument)
    alice.start_collection("instrument")
    stopped = alice.cli("collection", "stop", "instrument")
    assert stopped.code == 0, stopped.stderr
    flow = alice.client.create_flow("offline", one_action("beamlink:ls", {"collection": "instrument"}))
    run = alice.client.run_flow(flow.id, {})
    deadline = time.monotonic() + 20
    while (info := alice.client.get_run(run.run_id)).status != "INACTIVE":
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
    assert "instrument is offline" in info.display_status

    def restart() -> None:
        alice.start_collection("instrument")

    # Started beside the wait so the run is watched while the agent comes back.
    starter = threading.Thread(target=restart)
    starter.start()
    done = alice.client.wait_run(run.run_id, timeout=60)
    starter.join()
    assert done.status == "SUCCEEDED", done
    assert {e["name"] for e in done.output["result"]["details"]["DATA"]} >= {"notes.txt", "scan 001"}
