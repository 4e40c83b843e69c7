"""The thread and process engines: outcomes, timeouts, cancellation, dead workers and shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

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
from beamlink.agents.endpoint.engines import Engine, ProcessEngine, ThreadEngine

MakeEngine = Callable[..., tuple[Engine, Recorder]]


@pytest.fixture
def make_engine() -> Iterator[MakeEngine]:
    made: list[Engine] = []

    def make(kind: str, **options: object) -> tuple[Engine, Recorder]:
        recorder = Recorder()
        cls = ThreadEngine if kind == "thread" else ProcessEngine
        engine = cls(on_started=recorder.on_started, on_done=recorder.on_done, **options)  # type: ignore[arg-type]
        engine.start()
        made.append(engine)
        return engine, recorder

    yield make
    for engine in made:
        engine.shutdown()


ENGINES = ["thread", "process"]


@pytest.mark.parametrize("kind", ENGINES)
def test_a_task_succeeds_after_it_started(make_engine: MakeEngine, kind: str) -> None:
    engine, recorder = make_engine(kind, max_workers=2)
    task = job(shout, "hello")
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert value(outcome) == "HELLO"
    assert outcome.stdout == "out: hello\n"
    assert outcome.stderr == "err: hello\n"
    assert recorder.started == [task.task_id]
    assert outcome.started_at is not None
    assert engine.held() == []


@pytest.mark.parametrize("kind", ENGINES)
def test_a_raising_function_fails_the_task(make_engine: MakeEngine, kind: str) -> None:
    engine, recorder = make_engine(kind, max_workers=1)
    task = job(fail, "nope")
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "REMOTE_EXECUTION_ERROR"
    assert outcome.error.message == "ValueError: nope"


@pytest.mark.parametrize("kind", ENGINES)
def test_a_task_past_its_timeout_fails_once(make_engine: MakeEngine, kind: str) -> None:
    engine, recorder = make_engine(kind, max_workers=1)
    task = job(sleep_then, 2.5, "late", timeout=0.5)
    began = time.monotonic()
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert time.monotonic() - began < 2.3  # reported at the deadline, not when the call ends
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "TASK_TIMEOUT"
    assert outcome.error.message == "the task ran past its 0.5 s timeout"
    # Capacity is kept: the next task runs although (thread engine) the first call goes on.
    follow = job(add, 1, 2)
    engine.submit(follow)
    assert value(recorder.outcome(follow.task_id)) == 3
    if kind == "thread":
        assert engine.stats()["abandoned"] == 1
        assert eventually(lambda: engine.stats()["abandoned"] == 0, timeout=10)
        assert eventually(lambda: engine.stats()["threads"] == 1, timeout=5)
    assert recorder.reports_for(task.task_id) == 1


@pytest.mark.parametrize("kind", ENGINES)
def test_cancelling_a_queued_task(make_engine: MakeEngine, kind: str) -> None:
    engine, recorder = make_engine(kind, max_workers=1)
    blocker = job(sleep_then, 1.0, "done")
    queued = job(add, 1, 1)
    engine.submit(blocker)
    recorder.wait_started(blocker.task_id)
    engine.submit(queued)
    assert engine.stats()["queued"] == 1
    assert engine.cancel(queued.task_id) is True
    outcome = recorder.outcome(queued.task_id)
    assert outcome.state == "cancelled"
    assert outcome.error is not None
    assert outcome.error.code == "TASK_CANCELLED"
    assert value(recorder.outcome(blocker.task_id)) == "done"
    assert queued.task_id not in recorder.started
    assert recorder.reports_for(queued.task_id) == 1
    assert engine.cancel("no-such-task") is False


def test_the_thread_engine_cannot_cancel_a_running_task(make_engine: MakeEngine) -> None:
    engine, recorder = make_engine("thread", max_workers=1)
    task = job(sleep_then, 0.3, "finished")
    engine.submit(task)
    recorder.wait_started(task.task_id)
    assert engine.cancel(task.task_id) is False
    assert value(recorder.outcome(task.task_id)) == "finished"


def test_the_process_engine_cancels_a_running_task(make_engine: MakeEngine) -> None:
    engine, recorder = make_engine("process", max_workers=1)
    task = job(sleep_then, 30)
    engine.submit(task)
    recorder.wait_started(task.task_id)
    began = time.monotonic()
    assert engine.cancel(task.task_id) is True
    outcome = recorder.outcome(task.task_id)
    assert outcome.state == "cancelled"
    assert outcome.error is not None
    assert outcome.error.code == "TASK_CANCELLED"
    assert time.monotonic() - began < 5
    follow = job(add, 2, 2)
    engine.submit(follow)
    assert value(recorder.outcome(follow.task_id)) == 4


def test_a_dead_worker_is_reported_and_replaced(make_engine: MakeEngine) -> None:
    engine, recorder = make_engine("process", max_workers=1)
    task = job(die, 3)
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "WORKER_LOST"
    assert "the worker process running the task died (exit code 3)" in outcome.error.message
    follow = job(add, 20, 22)
    engine.submit(follow)
    assert value(recorder.outcome(follow.task_id)) == 42


def test_a_worker_exiting_with_status_zero_is_lost_too(make_engine: MakeEngine) -> None:
    engine, recorder = make_engine("process", max_workers=1)
    task = job(die, 0)
    engine.submit(task)
    outcome = recorder.outcome(task.task_id, timeout=10)
    assert outcome.error is not None
    assert outcome.error.code == "WORKER_LOST"
    follow = job(add, 1, 1)
    engine.submit(follow)
    assert value(recorder.outcome(follow.task_id)) == 2


def test_a_killed_worker_names_the_signal(make_engine: MakeEngine) -> None:
    def kill_myself() -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    engine, recorder = make_engine("process", max_workers=1)
    task = job(kill_myself)
    engine.submit(task)
    outcome = recorder.outcome(task.task_id)
    assert outcome.error is not None
    assert outcome.error.code == "WORKER_LOST"
    assert "killed by signal SIGKILL" in outcome.error.message


def test_process_workers_get_the_environment_and_run_apart(make_engine: MakeEngine) -> None:
    import os

    engine, recorder = make_engine("process", max_workers=1, environment={"BEAMLINK_TEST_VAR": "set"})
    env_task, pid_task = job(read_env, "BEAMLINK_TEST_VAR"), job(my_pid)
    engine.submit(env_task)
    engine.submit(pid_task)
    assert value(recorder.outcome(env_task.task_id)) == "set"
    assert value(recorder.outcome(pid_task.task_id)) != os.getpid()
    assert "BEAMLINK_TEST_VAR" not in os.environ


def test_max_tasks_per_child_replaces_workers(make_engine: MakeEngine) -> None:
    engine, recorder = make_engine("process", max_workers=1, max_tasks_per_child=1)
    tasks = [job(my_pid) for _ in range(2)]
    for task in tasks:
        engine.submit(task)
    pids = {value(recorder.outcome(task.task_id)) for task in tasks}
    assert len(pids) == 2


@pytest.mark.parametrize("kind", ENGINES)
def test_a_task_id_already_held_is_ignored(make_engine: MakeEngine, kind: str) -> None:
    engine, recorder = make_engine(kind, max_workers=1)
    task = job(sleep_then, 0.3, "once")
    engine.submit(task)
    engine.submit(task)
    assert engine.held() == [task.task_id]
    assert value(recorder.outcome(task.task_id)) == "once"
    time.sleep(0.3)
    assert recorder.reports_for(task.task_id) == 1


@pytest.mark.parametrize("kind", ENGINES)
def test_stats(make_engine: MakeEngine, kind: str) -> None:
    engine, recorder = make_engine(kind, max_workers=2)
    running = job(sleep_then, 0.5)
    engine.submit(running)
    recorder.wait_started(running.task_id)
    stats = engine.stats()
    assert stats["engine"] == kind
    assert stats["running"] == 1
    assert stats["queued"] == 0
    assert stats["workers"] == 2
    recorder.outcome(running.task_id)
    assert engine.stats()["completed"] == {"success": 1, "failed": 0, "cancelled": 0}


def test_process_engine_shutdown_leaves_no_worker_process() -> None:
    recorder = Recorder()
    engine = ProcessEngine(max_workers=2, on_started=recorder.on_started, on_done=recorder.on_done)
    engine.start()
    finished, running, queued = job(add, 1, 1), job(sleep_then, 30), job(sleep_then, 30)
    engine.submit(finished)
    recorder.outcome(finished.task_id)
    engine.submit(running)
    recorder.wait_started(running.task_id)
    engine.submit(queued)
    assert worker_children()
    returned = engine.shutdown()
    assert sorted(returned) == sorted([running.task_id, queued.task_id])
    assert eventually(lambda: worker_children() == [], timeout=5), worker_children()
    time.sleep(0.2)
    assert [o.task_id for o in recorder.outcomes] == [finished.task_id]  # the returned ones are not reported


def test_thread_engine_shutdown_returns_unfinished_tasks() -> None:
    recorder = Recorder()
    engine = ThreadEngine(max_workers=1, on_started=recorder.on_started, on_done=recorder.on_done)
    engine.start()
    running, queued = job(sleep_then, 0.5), job(add, 1, 1)
    engine.submit(running)
    recorder.wait_started(running.task_id)
    engine.submit(queued)
    assert sorted(engine.shutdown()) == sorted([running.task_id, queued.task_id])
    time.sleep(0.8)
    assert recorder.outcomes == []
    with pytest.raises(RuntimeError):
        engine.submit(job(add, 1, 1))
