"""The result spool: results survive a restart of the agent until acknowledged, in one append-only log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from beamlink.agents.endpoint import spool as spool_module
from beamlink.agents.endpoint.spool import ResultSpool
from beamlink.protocol.agent import TaskOutcome


def outcome(task_id: str, result: str = "r") -> TaskOutcome:
    return TaskOutcome(task_id=task_id, state="success", result=result, finished_at=datetime.now(UTC))


def lines(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (directory / "results.log").read_text().splitlines()]


def test_batches_and_acks_are_appended_and_the_log_empties_when_nothing_waits(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    spool.put([outcome("a"), outcome("b")])
    spool.put([outcome("c")])
    assert spool.ids() == {"a", "b", "c"}
    assert len(lines(tmp_path)) == 2

    spool.remove(["a"])
    assert lines(tmp_path)[-1] == {"acked": ["a"]}
    assert [o.task_id for o in spool.load()] == ["b", "c"]

    spool.remove(["b", "c", "never-spooled"])
    assert (tmp_path / "results.log").stat().st_size == 0
    assert len(spool) == 0
    spool.put([outcome("d")])  # the emptied log goes on from its start
    assert [entry["results"][0]["task_id"] for entry in lines(tmp_path)] == ["d"]  # type: ignore[index]


def test_results_survive_a_restart_and_acknowledged_ones_stay_gone(tmp_path: Path) -> None:
    first = ResultSpool(tmp_path)
    first.put([outcome("a", "1"), outcome("b", "2")])
    first.remove(["a"])
    first.close()

    again = ResultSpool(tmp_path)
    assert again.ids() == {"b"}
    assert [(o.task_id, o.result) for o in again.load()] == [("b", "2")]
    again.remove(["b"])
    assert (tmp_path / "results.log").stat().st_size == 0


def test_a_damaged_line_sets_the_log_aside_and_keeps_the_rest(tmp_path: Path) -> None:
    first = ResultSpool(tmp_path)
    first.put([outcome("a", "1")])
    first.close()
    with (tmp_path / "results.log").open("ab") as log:
        log.write(b'{"results": [{"task_id": "b", "sta')  # a write cut short by a crash
    spool = ResultSpool(tmp_path)
    assert spool.ids() == {"a"}
    (aside,) = tmp_path.glob("results-*.bad")
    assert b'"task_id": "b", "sta' in aside.read_bytes()  # kept for a person to look at
    assert [o.task_id for o in ResultSpool(tmp_path).load()] == ["a"]


def test_batches_spooled_by_an_older_agent_are_taken_over(tmp_path: Path) -> None:
    old = [outcome("a", "1").model_dump(mode="json")]
    (tmp_path / "0001.json").write_text(json.dumps(old))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "half.json.partial").write_text("[")
    spool = ResultSpool(tmp_path)
    assert spool.ids() == {"a"}
    assert (tmp_path / "broken.bad").exists()
    assert not list(tmp_path.glob("*.json*"))
    assert [o.result for o in ResultSpool(tmp_path).load()] == ["1"]


def test_a_result_spooled_twice_is_kept_once(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    spool.put([outcome("a", "old")])
    spool.put([outcome("a", "new")])
    assert [o.result for o in spool.load()] == ["new"]
    assert [o.result for o in ResultSpool(tmp_path).load()] == ["new"]


def test_an_ack_that_overtakes_the_write_is_kept(tmp_path: Path) -> None:
    """The agent sends a batch before spooling it: its ack may be handled first."""
    spool = ResultSpool(tmp_path)
    spool.remove(["a"])
    spool.put([outcome("a"), outcome("b")])
    assert spool.ids() == {"b"}
    assert [o.task_id for o in ResultSpool(tmp_path).load()] == ["b"]
    spool.remove(["c"])
    spool.put([outcome("c")])
    assert spool.ids() == {"b"}
    spool.put([outcome("a")])  # an ack counts once: the same id spooled again is kept
    assert spool.ids() == {"a", "b"}


def test_a_large_log_is_rewritten_with_what_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "_REWRITE_BYTES", 2000)
    spool = ResultSpool(tmp_path)
    spool.put([outcome("keep", "k")])
    for n in range(20):
        spool.put([outcome(f"t{n}", "x" * 100)])
        spool.remove([f"t{n}"])
    assert (tmp_path / "results.log").stat().st_size < 3000
    assert [(o.task_id, o.result) for o in ResultSpool(tmp_path).load()] == [("keep", "k")]
