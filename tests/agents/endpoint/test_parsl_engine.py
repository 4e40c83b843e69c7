"""The parsl engine with a LocalProvider: real interchange, worker pool and workers on this host.

One engine serves most tests (starting one takes a couple of seconds); its HTEX heartbeat is 1 s so a
dead worker is noticed quickly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agents.endpoint.endpoint_helpers import (
    Recorder,
    add,
    die,
    eventually,
    fail,
    job,
    my_pid,
    read_env,
    shout,
    sleep_then,
    value,
    worker_children,
)
from beamlink.agents.endpoint.config import build_engine, parse_config
from beamlink.agents.endpoint.engines.htex import ParslEngine, processes_of_run

pytestmark = pytest.mark.slow

CONFIG = """\
environment:
  BEAMLINK_TEST_VAR: from-config
engine:
  type: parsl
  max_workers_per_node: 2
  heartbeat_period: 1
  heartbeat_threshold: 10
  strategy_period: 0.5
  provider:
    type: LocalProvider
    init_blocks: 1
    min_blocks: 0
    max_blocks: 1
"""


def start_engine(run_dir: Path) -> tuple[ParslEngine, Recorder]:
    recorder = Recorder()
    engine = build_engine(
        parse_config(CONFIG), run_dir=run_dir, on_started=recorder.on_started, on_done=recorder.on_done
    )
    assert isinstance(engine, ParslEngine)
    engine.start()
    return engine, recorder


@pytest.fixture(scope="module")
def parsl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ParslEngine, Recorder]]:
    engine, recorder = start_engine(tmp_path_factory.mktemp("parsl-run"))
    yield engine, recorder
    engine.shutdown()


def test_a_task_succeeds_with_its_output(parsl: tuple[ParslEngine, Recorder]) -> None:
    engine, recorder = parsl
    task = job(shout, "parsl")
    engine.submit(task)
    outcome = recorder.outcome(task.task_id, timeout=60)
    assert value(outcome) == "PARSL"
    assert outcome.stdout == "out: parsl\n"
    assert outcome.stderr == "err: parsl\n"
    # A call that ends before the engine saw it start reports its start in the outcome only.
    assert outcome.started_at is not None
    assert outcome.started_at <= outcome.finished_at


def test_workers_get_the_environment_and_run_apart(parsl: tuple[ParslEngine, Recorder]) -> None:
    import os

    engine, recorder = parsl
    env_task, pid_task = job(read_env, "BEAMLINK_TEST_VAR"), job(my_pid)
    engine.submit(env_task)
    engine.submit(pid_task)
    assert value(recorder.outcome(env_task.task_id)) == "from-config"
    assert value(recorder.outcome(pid_task.task_id)) != os.getpid()


def test_a_raising_function_fails_the_task(parsl: tuple[ParslEngine, Recorder]) -> None:
    engine, recorder = parsl
    task = job(fail, "in parsl")
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "REMOTE_EXECUTION_ERROR"
    assert outcome.error.message == "ValueError: in parsl"


def test_a_task_past_its_timeout_is_killed(parsl: tuple[ParslEngine, Recorder]) -> None:
    engine, recorder = parsl
    task = job(sleep_then, 30, timeout=1)
    began = time.monotonic()
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert time.monotonic() - began < 10
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "TASK_TIMEOUT"
    assert outcome.error.message == "the task ran past its 1 s timeout"
    follow = job(add, 1, 2)
    engine.submit(follow)
    assert value(recorder.outcome(follow.task_id)) == 3
    assert recorder.reports_for(task.task_id) == 1


def test_a_task_holding_the_gil_is_killed_by_the_engine(parsl: tuple[ParslEngine, Recorder]) -> None:
    def busy() -> int:
        return sum(range(10**11))  # one C call: the worker's watchdog thread never gets to run

    engine, recorder = parsl
    task = job(busy, timeout=1)
    began = time.monotonic()
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert time.monotonic() - began < 10
    assert outcome.error is not None
    assert outcome.error.code == "TASK_TIMEOUT"
    follows = [job(add, 1, 1) for _ in range(2)]
    for follow in follows:
        engine.submit(follow)
    assert [value(recorder.outcome(f.task_id)) for f in follows] == [2, 2]


def test_a_dead_worker_is_reported_and_replaced(parsl: tuple[ParslEngine, Recorder]) -> None:
    engine, recorder = parsl
    task = job(die, 1)
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "WORKER_LOST"
    assert "the worker process running the task died" in outcome.error.message
    follows = [job(add, i, i) for i in range(4)]
    for follow in follows:
        engine.submit(follow)
    assert [value(recorder.outcome(f.task_id)) for f in follows] == [0, 2, 4, 6]


def test_cancelling_queued_and_running_tasks(parsl: tuple[ParslEngine, Recorder]) -> None:
    engine, recorder = parsl
    running = [job(sleep_then, 30) for _ in range(2)]  # both workers busy
    for task in running:
        engine.submit(task)
    for task in running:
        recorder.wait_started(task.task_id)
    queued = job(add, 5, 5)
    engine.submit(queued)
    assert engine.stats()["queued"] == 1
    assert engine.cancel(queued.task_id) is True
    outcome = recorder.outcome(queued.task_id)
    assert outcome.state == "cancelled"
    assert outcome.error is not None
    assert outcome.error.code == "TASK_CANCELLED"

    began = time.monotonic()
    for task in running:
        assert engine.cancel(task.task_id) is True
    for task in running:
        cancelled = recorder.outcome(task.task_id)
        assert cancelled.state == "cancelled"
        assert cancelled.started_at is not None
    assert time.monotonic() - began < 5
    # The killed workers are replaced and the queued task never ran.
    follow = job(add, 6, 7)
    engine.submit(follow)
    assert value(recorder.outcome(follow.task_id, timeout=60)) == 13
    assert queued.task_id not in recorder.started
    assert all(recorder.reports_for(t.task_id) == 1 for t in [*running, queued])
    assert engine.cancel("no-such-task") is False


def test_stats(parsl: tuple[ParslEngine, Recorder]) -> None:
    engine, _ = parsl
    assert eventually(lambda: engine.stats()["workers"] == 2, timeout=30), engine.stats()
    stats = engine.stats()
    assert stats["engine"] == "parsl"
    assert stats["managers"] == 1
    # The provider's view of the block (polled every few seconds) may still say PENDING.
    assert set(stats["blocks"]) <= {"PENDING", "RUNNING"}
    assert sum(stats["blocks"].values()) == 1
    assert {"queued", "running", "completed", "outstanding"} <= set(stats)


def test_logs_and_scripts_are_under_the_run_dir(parsl: tuple[ParslEngine, Recorder]) -> None:
    engine, _ = parsl
    assert (engine.run_dir / "htex" / "interchange.log").exists()
    assert list((engine.run_dir / "submit_scripts").glob("*.sh"))
    assert (engine.run_dir / "control" / "cancel").is_dir()


def test_shutdown_leaves_no_parsl_process(tmp_path: Path) -> None:
    engine, recorder = start_engine(tmp_path / "run")
    task = job(add, 1, 1)
    engine.submit(task)
    assert value(recorder.outcome(task.task_id, timeout=60)) == 2
    busy = job(sleep_then, 30)
    engine.submit(busy)
    recorder.wait_started(busy.task_id)
    pool = processes_of_run(engine.marker)
    assert len(pool) >= 3  # the worker pool (manager) and its two workers, at least
    interchange = engine.executor.interchange_proc.pid
    assert psutil.pid_exists(interchange)

    began = time.monotonic()
    assert engine.shutdown() == [busy.task_id]
    assert time.monotonic() - began < 30
    assert processes_of_run(engine.marker) == []
    assert not any(_alive(p) for p in pool)
    assert not _alive(psutil.Process(interchange)) if psutil.pid_exists(interchange) else True
    assert recorder.reports_for(busy.task_id) == 0


def test_shutdown_after_the_interchange_died(tmp_path: Path) -> None:
    engine, recorder = start_engine(tmp_path / "run")
    task = job(add, 2, 2)
    engine.submit(task)
    assert value(recorder.outcome(task.task_id, timeout=60)) == 4
    pool = processes_of_run(engine.marker)
    assert pool
    engine.executor.interchange_proc.kill()
    engine.executor.interchange_proc.wait()
    began = time.monotonic()
    engine.shutdown()
    assert time.monotonic() - began < 30
    assert processes_of_run(engine.marker) == []
    assert not any(_alive(p) for p in pool)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_the_last_engine_leaves_no_child_process(parsl: tuple[ParslEngine, Recorder]) -> None:
    engine, _ = parsl
    engine.shutdown()
    assert eventually(lambda: worker_children() == [], timeout=5), worker_children()
