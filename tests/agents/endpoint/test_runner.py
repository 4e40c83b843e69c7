"""run_task: what a worker does with one task, and the environment check before it."""

from __future__ import annotations

import os
import threading
from typing import Any

from agents.endpoint.endpoint_helpers import add, code_of, fail, read_env, shout
from beamlink import serialize
from beamlink.agents.endpoint.runner import TASK_ID_VARIABLE, check_environment, human_size, run_task
from beamlink.protocol.agent import TaskOutcome
from beamlink.protocol.compute import Environment, FunctionCode


def run(
    fn: Any, *args: Any, output_limit: int = 10_000, result_limit: int = 1_000_000, **kwargs: Any
) -> TaskOutcome:
    packed = serialize.pack_arguments(args, kwargs)
    result = run_task(code_of(fn), packed, "task-1", output_limit=output_limit, result_limit=result_limit)
    return TaskOutcome.model_validate(result)


def test_success_returns_the_packed_value() -> None:
    outcome = run(add, 2, b=3)
    assert outcome.state == "success"
    assert outcome.task_id == "task-1"
    assert outcome.result is not None
    assert serialize.unpack(outcome.result) == 5
    assert outcome.error is None
    assert outcome.started_at is not None
    assert outcome.started_at <= outcome.finished_at


def test_the_outcome_is_plain_json_data() -> None:
    import json

    result = run_task(
        code_of(add), serialize.pack_arguments((1, 1), {}), "t", output_limit=10, result_limit=100
    )
    assert json.loads(json.dumps(result)) == result


def test_an_exception_comes_back_with_its_type_and_traceback() -> None:
    outcome = run(fail, "bad input")
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "REMOTE_EXECUTION_ERROR"
    assert outcome.error.message == "ValueError: bad input"
    assert outcome.error.type_name == "builtins.ValueError"
    assert outcome.error.traceback is not None
    assert "in fail" in outcome.error.traceback
    assert "run_task" not in outcome.error.traceback  # the runner's own frames are trimmed
    rebuilt = serialize.exception_from_error(outcome.error)
    assert isinstance(rebuilt, ValueError)


def test_system_exit_fails_the_task_only() -> None:
    def leave() -> None:
        raise SystemExit(3)

    outcome = run(leave)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.type_name == "builtins.SystemExit"


def test_stdout_and_stderr_are_captured() -> None:
    outcome = run(shout, "hi")
    assert serialize.unpack(outcome.result or "") == "HI"
    assert outcome.stdout == "out: hi\n"
    assert outcome.stderr == "err: hi\n"


def test_output_is_bounded_and_keeps_the_end() -> None:
    def chatter() -> None:
        for i in range(5000):
            print(f"line {i}")

    outcome = run(chatter, output_limit=200)
    assert outcome.stdout.endswith("line 4999\n")
    assert "earlier characters dropped" in outcome.stdout.splitlines()[0]
    kept = outcome.stdout.split("\n", 1)[1]
    assert len(kept) == 200


def test_capture_is_per_task_when_threads_run_tasks_at_once() -> None:
    def noisy(tag: str, rounds: int) -> str:
        import sys
        import time

        for _ in range(rounds):
            print(tag)
            print(tag, file=sys.stderr)
            time.sleep(0.002)
        return tag

    outcomes: dict[str, TaskOutcome] = {}
    go = threading.Barrier(2)

    def worker(tag: str) -> None:
        go.wait()
        outcomes[tag] = run(noisy, tag, 100)

    threads = [threading.Thread(target=worker, args=(tag,)) for tag in ("alpha", "omega")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for tag in ("alpha", "omega"):
        assert outcomes[tag].stdout == f"{tag}\n" * 100
        assert outcomes[tag].stderr == f"{tag}\n" * 100


def test_output_outside_a_task_still_reaches_the_real_stream(capsys: Any) -> None:
    run(shout, "inside")
    print("outside")
    assert "outside" in capsys.readouterr().out


def test_a_result_over_the_limit_fails_with_advice() -> None:
    def big() -> bytes:
        return b"x" * 20_000

    outcome = run(big, result_limit=10_000)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "RESULT_TOO_LARGE"
    assert (
        "over the 10 kB result limit: write it to a file and move it with a transfer" in outcome.error.message
    )
    assert outcome.error.message.startswith("the result is 26.")


def test_arguments_that_do_not_load() -> None:
    result = run_task(code_of(add), "not base64 !!", "t", output_limit=10, result_limit=100)
    outcome = TaskOutcome.model_validate(result)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "SERIALIZATION_ERROR"


def test_a_function_that_does_not_load() -> None:
    broken = FunctionCode(
        id="f-broken", name="ghost", serialized="bm90IGEgcGlja2xl", environment=serialize.environment()
    )
    result = run_task(broken, serialize.pack_arguments((), {}), "t", output_limit=10, result_limit=100)
    outcome = TaskOutcome.model_validate(result)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "SERIALIZATION_ERROR"
    assert "cannot load function 'ghost'" in outcome.error.message


def test_a_return_value_that_cannot_be_pickled() -> None:
    def generator() -> Any:
        return (i for i in range(3))

    outcome = run(generator)
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "SERIALIZATION_ERROR"
    assert "return value" in outcome.error.message


def test_the_task_id_is_in_the_environment_during_the_call() -> None:
    assert serialize.unpack(run(read_env, TASK_ID_VARIABLE).result or "") == "task-1"
    assert TASK_ID_VARIABLE not in os.environ


def test_human_size() -> None:
    assert human_size(12_400_000) == "12.4 MB"
    assert human_size(10_000_000) == "10 MB"
    assert human_size(512_000) == "512 kB"
    assert human_size(80) == "80 B"


# -- environment check -----------------------------------------------------------------------------


def other_environment() -> Environment:
    return Environment(python_version="3.9.1", dill_version="0.3.6")


def test_matching_environments_pass() -> None:
    assert check_environment(serialize.environment(), code_of(add)) is None


def test_a_submitter_on_other_versions_is_refused_with_both_sides_named() -> None:
    error = check_environment(other_environment(), code_of(add))
    assert error is not None
    here = serialize.environment()
    assert error.code == "ENVIRONMENT_MISMATCH"
    assert error.message == (
        f"the task was submitted from Python 3.9.1 / dill 0.3.6 but this endpoint runs Python "
        f"{here.python_version} / dill {here.dill_version}: run the endpoint (or the submitter) with "
        "matching versions"
    )


def test_a_function_from_other_versions_runs_from_its_source_only() -> None:
    with_source = code_of(add).model_copy(update={"environment": other_environment()})
    assert check_environment(serialize.environment(), with_source) is None
    without = with_source.model_copy(update={"source": None})
    error = check_environment(serialize.environment(), without)
    assert error is not None
    assert error.code == "ENVIRONMENT_MISMATCH"
    assert "without its source text" in error.message
