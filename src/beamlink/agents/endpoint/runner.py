"""What runs inside a worker: load a function, call it on its arguments, describe the outcome.

:func:`run_task` never raises. It returns a plain dict (the fields of
:class:`~beamlink.protocol.agent.TaskOutcome`, ``task_id`` included, datetimes as ISO strings) so that the
same value travels unchanged through a thread, a pebble worker process or a Parsl worker, and the engine
rebuilds the outcome with ``TaskOutcome.model_validate``.
"""

from __future__ import annotations

import os
import threading
import traceback
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from beamlink import errors, serialize
from beamlink.agents.endpoint.capture import capture_output
from beamlink.protocol.agent import TaskOutcome
from beamlink.protocol.compute import Environment, FunctionCode, TaskError, is_json_payload

__all__ = ["FUNCTION_CACHE_SIZE", "TASK_ID_VARIABLE", "check_environment", "human_size", "run_task"]

TASK_ID_VARIABLE = "BEAMLINK_TASK_ID"
FUNCTION_CACHE_SIZE = 64

_functions: OrderedDict[str, tuple[str, Callable[..., Any]]] = OrderedDict()
_functions_lock = threading.Lock()
_env_lock = threading.Lock()


def _now() -> datetime:
    return datetime.now(UTC)


def human_size(size: int) -> str:
    """``12.4 MB``, ``10 MB``, ``512 kB``, ``80 B`` (decimal units, as limits are usually written)."""
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor:
            text = f"{size / factor:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{size} B"


def _load(function: FunctionCode) -> Callable[..., Any]:
    """The callable, from a small LRU keyed by function id so a stream of tasks unpickles it once."""
    with _functions_lock:
        cached = _functions.get(function.id)
        if cached is not None and cached[0] == function.serialized:
            _functions.move_to_end(function.id)
            return cached[1]
    fn = serialize.load_function(function)
    with _functions_lock:
        _functions[function.id] = (function.serialized, fn)
        _functions.move_to_end(function.id)
        while len(_functions) > FUNCTION_CACHE_SIZE:
            _functions.popitem(last=False)
    return fn


@contextmanager
def _task_id_variable(task_id: str) -> Iterator[None]:
    # The environment is process-wide: in a thread engine concurrent tasks share it, and the variable holds
    # whichever task set it last. Restore only what is still ours.
    with _env_lock:
        previous = os.environ.get(TASK_ID_VARIABLE)
        os.environ[TASK_ID_VARIABLE] = task_id
    try:
        yield
    finally:
        with _env_lock:
            if os.environ.get(TASK_ID_VARIABLE) == task_id:
                if previous is None:
                    os.environ.pop(TASK_ID_VARIABLE, None)
                else:
                    os.environ[TASK_ID_VARIABLE] = previous


def _without_own_frames(exc: BaseException) -> BaseException:
    """Drop the leading traceback frames that belong to this module: users care about their code."""
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return exc.with_traceback(tb)


def _outcome(
    task_id: str,
    state: str,
    *,
    started_at: datetime | None,
    result: str | None = None,
    error: TaskError | None = None,
    stdout: str = "",
    stderr: str = "",
) -> dict[str, Any]:
    outcome = TaskOutcome.model_validate(
        {
            "task_id": task_id,
            "state": state,
            "result": result,
            "error": error,
            "stdout": stdout,
            "stderr": stderr,
            "started_at": started_at,
            "finished_at": _now(),
        }
    )
    return outcome.model_dump(mode="json")


def run_task(
    function: FunctionCode, args: str, task_id: str, *, output_limit: int, result_limit: int
) -> dict[str, Any]:
    """Run one task here and now; the outcome as a JSON-able dict (see the module docstring).

    * success: ``result`` is ``serialize.pack(value)``;
    * the function raised: failed, ``REMOTE_EXECUTION_ERROR`` with the exception's type and traceback;
    * the function or its arguments could not be loaded, or the value cannot be pickled:
      failed, ``SERIALIZATION_ERROR``;
    * the packed value is longer than ``result_limit``: failed, ``RESULT_TOO_LARGE``.

    What the call prints to sys.stdout/sys.stderr is kept, the last ``output_limit`` characters of each.
    ``BEAMLINK_TASK_ID`` is set in the environment during the call.
    """
    started_at = _now()
    try:
        fn = _load(function)
        call_args, call_kwargs = serialize.unpack_arguments(args)
    except Exception as exc:
        message = exc.message if isinstance(exc, errors.BeamlinkError) else f"{type(exc).__name__}: {exc}"
        error = TaskError(
            code=errors.SerializationError.code,
            message=message,
            type_name=f"{type(exc).__module__}.{type(exc).__qualname__}",
            traceback="".join(traceback.format_exception(exc)),
        )
        return _outcome(task_id, "failed", started_at=started_at, error=error)

    value: Any = None
    failure: TaskError | None = None
    with capture_output(output_limit) as captured, _task_id_variable(task_id):
        try:
            value = fn(*call_args, **call_kwargs)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt in user code fail the task only
            failure = serialize.pack_exception(_without_own_frames(exc))
    stdout, stderr = captured.stdout.text(), captured.stderr.text()
    output: dict[str, Any] = {"stdout": stdout, "stderr": stderr}
    if failure is not None:
        return _outcome(task_id, "failed", started_at=started_at, error=failure, **output)

    try:
        packed = serialize.pack_json(value) if is_json_payload(args) else serialize.pack(value)
    except errors.SerializationError as exc:
        error = TaskError(
            code=errors.SerializationError.code, message=f"the function's return value: {exc.message}"
        )
        return _outcome(task_id, "failed", started_at=started_at, error=error, **output)
    if len(packed) > result_limit:
        error = TaskError(
            code=errors.ResultTooLarge.code,
            message=(
                f"the result is {human_size(len(packed))}, over the {human_size(result_limit)} result limit: "
                "write it to a file and move it with a transfer"
            ),
        )
        return _outcome(task_id, "failed", started_at=started_at, error=error, **output)
    return _outcome(task_id, "success", started_at=started_at, result=packed, **output)


def _versions(environment: Environment) -> str:
    return f"Python {environment.python_version} / dill {environment.dill_version}"


def check_environment(
    submitter: Environment, function: FunctionCode, *, json_args: bool = False
) -> TaskError | None:
    """Why payloads from ``submitter`` (and ``function``'s pickle) cannot load here; None when they can.

    The arguments were pickled by the submitter, so its Python minor and dill versions must match this
    endpoint's. A function registered from another environment still runs when its source text travelled
    with it (:func:`beamlink.serialize.load_function` falls back to it), so it is refused only without one.
    """
    here = serialize.environment()
    if not json_args and submitter.mismatch(here):
        return TaskError(
            code=errors.EnvironmentMismatch.code,
            message=(
                f"the task was submitted from {_versions(submitter)} but this endpoint runs "
                f"{_versions(here)}: run the endpoint (or the submitter) with matching versions"
            ),
        )
    if function.environment.mismatch(here) and not function.source:
        return TaskError(
            code=errors.EnvironmentMismatch.code,
            message=(
                f"function {function.name!r} was registered from {_versions(function.environment)} without "
                f"its source text, and this endpoint runs {_versions(here)}: register it again from matching "
                "versions"
            ),
        )
    return None
