"""Search through the public surface: HTTP, the SDK and the CLI against a real service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from beamlink.errors import NotFound, PayloadTooLarge, PermissionDenied, QuerySyntaxError
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import Person
from helpers import MakeUser, RunCli


def _index_name() -> str:
    return f"results-{uuid.uuid4().hex[:8]}"


def test_records_reach_the_right_people_only(service: ServiceProcess, make_user: MakeUser) -> None:
    owner, reader, stranger = make_user("owner"), make_user("reader"), make_user("stranger")
    name = _index_name()
    owner.client.create_index(name, display_name="Beamline 8-ID results")
    owner.client.ingest(
        name,
        {
            "records": [
                {
                    "subject": "run-1",
                    "entries": [{"visible_to": ["public"], "content": {"title": "open gel"}}],
                },
                {
                    "subject": "run-2",
                    "entries": [
                        {"visible_to": [f"user:{reader.username}"], "content": {"title": "private gel"}}
                    ],
                },
            ]
        },
    )
    anonymous = Client(service.url, anonymous=True)
    assert [h.subject for h in anonymous.search(name, "gel").gmeta] == ["run-1"]
    assert sorted(h.subject for h in reader.client.search(name, "gel").gmeta) == ["run-1", "run-2"]
    assert [h.subject for h in stranger.client.search(name, "gel").gmeta] == ["run-1"]
    with pytest.raises(NotFound):
        stranger.client.get_subject(name, "run-2")
    with pytest.raises(NotFound):
        anonymous.get_subject(name, "run-2")
    assert reader.client.get_subject(name, "run-2").entries[0].content == {"title": "private gel"}
    with pytest.raises(PermissionDenied):
        reader.client.ingest(name, {"subject": "x", "entries": [{"visible_to": ["public"], "content": {}}]})
    listed = {i.name: i for i in owner.client.list_indexes()}
    assert listed[name].user_role == "owner"
    assert listed[name].num_entries == 2


def test_http_errors_are_clear(service: ServiceProcess, make_user: MakeUser) -> None:
    owner = make_user("owner")
    name = _index_name()
    owner.client.create_index(name)
    with httpx.Client(base_url=service.url) as http:
        bad = http.post(f"/v1/indexes/{name}/query", json={"q": "gel AND (beads"})
        assert bad.status_code == 400
        assert bad.json()["code"] == "QUERY_SYNTAX_ERROR"
        assert bad.json()["details"]["position"] == 8
        simple = http.get(f"/v1/indexes/{name}/query", params={"q": "a OR"})
        assert simple.status_code == 400
        assert simple.json()["details"]["position"] == 4
        anonymous_ingest = http.post(f"/v1/indexes/{name}/ingest", json={"subject": "s", "entries": []})
        assert anonymous_ingest.status_code == 401
    with pytest.raises(QuerySyntaxError, match="position 2"):
        owner.client.search(name, 'a "b')
    big = {"subject": "big", "entries": [{"visible_to": ["public"], "content": {"blob": "x" * 1_100_000}}]}
    with pytest.raises(PayloadTooLarge, match=r"at most 1,048,576 bytes \(BEAMLINK_SEARCH_MAX_ENTRY_BYTES\)"):
        owner.client.ingest(name, big)
    assert owner.client.get_index(name).num_entries == 0


def test_a_record_may_reference_only_files_its_writer_can_read(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    alice, bob = make_person("alice"), make_person("bob")
    root = tmp_path / "alice-data"
    root.mkdir()
    (root / "plot.png").write_bytes(b"png")
    alice.configure_collection("data", root)
    collection_id = alice.start_collection("data")
    name = _index_name()
    alice.client.create_index(name)
    alice.client.add_index_role(name, f"user:{bob.username}", "writer")
    record = {
        "subject": "run-9",
        "entries": [
            {
                "visible_to": ["public"],
                "content": {"title": "t", "thumbnail": {"collection": collection_id, "path": "/plot.png"}},
            }
        ],
    }
    # bob may write to the index but cannot read alice's collection, so he cannot publish her files.
    with pytest.raises(NotFound, match="/records/0/entries/0/content/thumbnail"):
        bob.client.ingest(name, record)
    record["entries"][0]["content"]["thumbnail"]["collection"] = "data"  # her own name for it
    assert alice.client.ingest(name, record).created == 1
    # Stored by id: the name means nothing to anyone else who sees the record.
    stored = bob.client.get_subject(name, "run-9").entries[0].content
    assert stored["thumbnail"] == {"collection": collection_id, "path": "/plot.png"}


def test_the_cli_creates_ingests_queries_shows_and_deletes(cli: RunCli, tmp_path: Path) -> None:
    name = _index_name()
    created = cli("search", "index", "create", name, "--display-name", "CLI results")
    assert created.code == 0, created.stderr
    lines = [
        {
            "subject": f"scan-{i}",
            "entries": [
                {
                    "visible_to": ["public"],
                    "content": {
                        "title": f"scan {i}",
                        "sample": "silica" if i % 2 else "gel",
                        "temperature": 20 + i,
                        "taken": f"2026-0{1 + i % 3}-01",
                    },
                }
            ],
        }
        for i in range(6)
    ]
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(json.dumps(line) for line in lines))
    ingested = cli("search", "ingest", name, str(records))
    assert ingested.code == 0, ingested.stderr
    assert "ingested 6 records" in ingested.stdout

    table = cli(
        "search",
        "query",
        name,
        "scan",
        "--facet",
        "sample",
        "--facet",
        "taken:month",
        "--sort",
        "temperature:desc",
        "--limit",
        "3",
    )
    assert table.code == 0, table.stderr
    assert "Results 1-3 of 6" in table.stdout
    assert table.stdout.index("scan-5") < table.stdout.index("scan-4")
    assert "silica" in table.stdout
    assert "2026-03" in table.stdout

    as_json = cli("search", "query", name, "--filter", "sample=gel", "--range", "temperature=21..", "--json")
    assert as_json.code == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert sorted(hit["subject"] for hit in result["gmeta"]) == ["scan-2", "scan-4"]

    shown = cli("search", "show", name, "scan-2")
    assert shown.code == 0
    assert '"sample": "gel"' in shown.stdout

    bad = cli("search", "query", name, "scan AND")
    assert bad.code != 0
    assert "needs a term after it at position 8" in bad.stderr

    deleted = cli("search", "delete", name, "--query", "sample:gel")
    assert deleted.code == 0, deleted.stderr
    assert "deleted 3 entries of 3 subjects" in deleted.stdout
    listed = cli("search", "index", "list", "--json")
    entry = next(i for i in json.loads(listed.stdout) if i["name"] == name)
    assert entry["num_entries"] == 3
    refused = cli("search", "index", "delete", name)
    assert refused.code != 0
    assert "--yes" in refused.stderr
    assert cli("search", "index", "delete", name, "--yes").code == 0
