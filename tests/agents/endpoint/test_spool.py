"""The result spool: results survive a restart of the agent until acknowledged, one file per batch."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from beamlink.agents.endpoint.spool import ResultSpool
from beamlink.protocol.agent import TaskOutcome


def outcome(task_id: str, result: str = "r") -> TaskOutcome:
    return TaskOutcome(task_id=task_id, state="success", result=result, finished_at=datetime.now(UTC))


def test_a_batch_is_one_file_and_goes_when_all_its_results_are_acknowledged(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    spool.put([outcome("a"), outcome("b")])
    spool.put([outcome("c")])
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert spool.ids() == {"a", "b", "c"}

    spool.remove(["a"])
    assert len(list(tmp_path.glob("*.json"))) == 2  # b is still waiting in the first file
    assert [o.task_id for o in spool.load()] in (["b", "c"], ["c", "b"])

    spool.remove(["b", "c", "never-spooled"])
    assert list(tmp_path.iterdir()) == []
    assert len(spool) == 0


def test_results_survive_a_restart_and_acknowledged_ones_stay_gone(tmp_path: Path) -> None:
    first = ResultSpool(tmp_path)
    first.put([outcome("a", "1"), outcome("b", "2")])
    first.remove(["a"])

    again = ResultSpool(tmp_path)
    # The file still holds a, but only b is unacknowledged in this process; a new process cannot know
    # that a was acknowledged, so it re-sends it and the service drops the duplicate by task id.
    assert "b" in again.ids()
    results = {o.task_id: o.result for o in again.load()}
    assert results["b"] == "2"
    again.remove(list(again.ids()))
    assert list(tmp_path.glob("*.json")) == []


def test_a_damaged_file_is_set_aside_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "half.json.partial").write_text("[")
    spool = ResultSpool(tmp_path)
    assert spool.ids() == set()
    assert (tmp_path / "broken.bad").exists()
    assert not (tmp_path / "half.json.partial").exists()


def test_a_result_spooled_twice_is_kept_once(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    spool.put([outcome("a", "old")])
    spool.put([outcome("a", "new")])
    assert len(list(tmp_path.glob("*.json"))) == 1  # the older file held only a: gone
    assert [o.result for o in spool.load()] == ["new"]


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
    assert len(list(tmp_path.glob("*.json"))) == 1
    spool.put([outcome("a")])  # an ack counts once: the same id spooled again is kept
    assert spool.ids() == {"a", "b"}
