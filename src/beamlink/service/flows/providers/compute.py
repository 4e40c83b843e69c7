"""The ``compute`` action: run one or many registered functions on endpoints; done when they all are.

Accepted bodies (``dialect`` says which URL the flow used, but every form is read the same way):

* beamlink: ``{"endpoint", "function", "args"?, "kwargs"?, "timeout"?}`` or ``{"endpoint", "tasks": [...]}``
* Globus Compute v2 (``compute.actions.globus.org``): ``{"tasks": [{"endpoint", "function", "args"?,
  "kwargs"?, "payload"?}]}`` — a ``payload`` object becomes the keyword arguments (Gladier functions are
  ``def f(**data)``), any other payload the one positional argument;
* v3 (``/v3``): ``{"endpoint_id", "tasks": [{"function_id", "args", "kwargs"}]}``; funcX-era: ``func``.

Arguments travel as JSON and results come back as JSON (the service never unpickles), in
``details.results[i].output`` (v2) and ``details.result[i]`` (funcX era). The tasks are written in the
run's own transaction; the endpoint gets them once it commits, and their results wake the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from beamlink.errors import InvalidInput
from beamlink.protocol.compute import (
    TERMINAL_STATES,
    Environment,
    TaskBatch,
    TaskSpec,
    is_json_payload,
    json_arguments,
    read_json_payload,
)
from beamlink.protocol.flows import ProviderDescription
from beamlink.service.compute import functions as functions_
from beamlink.service.compute import tasks
from beamlink.service.compute.hub import AgentLink
from beamlink.service.compute.models import Task
from beamlink.service.flows.providers.base import ActionCall, Progress, Provider

__all__ = ["ComputeProvider"]

_TASK_KEYS = {
    "endpoint",
    "endpoint_id",
    "function",
    "function_id",
    "func",
    "args",
    "kwargs",
    "payload",
    "timeout",
}


def _field(value: dict[str, Any], *names: str) -> Any:
    return next((value[name] for name in names if value.get(name) is not None), None)


def _task_specs(body: Any) -> list[tuple[str, str, list[Any], dict[str, Any], float | None]]:
    """(endpoint, function, args, kwargs, timeout) for every task of the body."""
    if not isinstance(body, dict):
        raise InvalidInput("the compute action's body must be an object", details={"field": "body"})
    raw_tasks = body.get("tasks")
    if raw_tasks is None:
        raw_tasks = [body]
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise InvalidInput("'tasks' must be a non-empty list of tasks", details={"field": "tasks"})
    specs = []
    for index, task in enumerate(raw_tasks):
        where = f"tasks[{index}]" if "tasks" in body else "body"
        if not isinstance(task, dict):
            raise InvalidInput(f"{where} must be an object", details={"field": where})
        unknown = sorted(set(task) - _TASK_KEYS - ({"tasks", "task_group_id"} if where == "body" else set()))
        if unknown:
            raise InvalidInput(
                f"{where} has unknown field(s) {unknown}: a task takes endpoint, function, args, kwargs "
                "or payload, and timeout",
                details={"field": f"{where}.{unknown[0]}"},
            )
        endpoint = _field(task, "endpoint", "endpoint_id") or _field(body, "endpoint", "endpoint_id")
        function = _field(task, "function", "function_id", "func")
        if not isinstance(endpoint, str) or not endpoint:
            raise InvalidInput(
                f"{where} names no endpoint: give 'endpoint' (an id or the name of one of yours)",
                details={"field": f"{where}.endpoint"},
            )
        if not isinstance(function, str) or not function:
            raise InvalidInput(
                f"{where} names no function: give 'function' (the id `beamlink function register` printed)",
                details={"field": f"{where}.function"},
            )
        args = task.get("args", [])
        kwargs = task.get("kwargs", {})
        if "payload" in task:
            payload = task["payload"]
            if isinstance(payload, dict):
                kwargs = {**payload, **kwargs}
            else:
                args = [payload, *args]
        if not isinstance(args, list):
            raise InvalidInput(f"{where}.args must be a list", details={"field": f"{where}.args"})
        if not isinstance(kwargs, dict):
            raise InvalidInput(f"{where}.kwargs must be an object", details={"field": f"{where}.kwargs"})
        timeout = task.get("timeout")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise InvalidInput(
                f"{where}.timeout must be a positive number of seconds", details={"field": where}
            )
        specs.append((endpoint, function, args, kwargs, float(timeout) if timeout else None))
    return specs


def _output(task: Task) -> Any:
    if task.result is None or not is_json_payload(task.result):
        return None
    try:
        return read_json_payload(task.result)
    except ValueError:
        return None


class ComputeProvider(Provider):
    name = "compute"
    description = ProviderDescription(
        title="Compute",
        subtitle="Run registered functions on compute endpoints",
        description="Runs one or many tasks (Globus Compute action provider bodies accepted); the action "
        "ends when every task has, with each task's JSON result in details.results[i].output.",
        keywords=["compute", "funcx", "globus compute"],
        input_schema={
            "type": "object",
            "properties": {
                "endpoint": {"type": "string"},
                "function": {"type": "string"},
                "args": {"type": "array"},
                "kwargs": {"type": "object"},
                "tasks": {"type": "array", "items": {"type": "object"}},
            },
        },
    )

    def start(self, call: ActionCall) -> Progress:
        specs = _task_specs(call.action.body)
        services = call.services
        group = call.action.id
        by_endpoint: dict[str, list[TaskSpec]] = {}
        environments: dict[str, Environment] = {}
        for endpoint, function_id, args, kwargs, timeout in specs:
            function = functions_.get_function(call.session, call.principal, function_id)
            environments.setdefault(endpoint, Environment.model_validate(function.environment))
            try:
                payload = json_arguments(args, kwargs)
            except (TypeError, ValueError) as exc:  # pragma: no cover - flow data is JSON already
                raise InvalidInput(f"the task arguments are not JSON: {exc}") from None
            by_endpoint.setdefault(endpoint, []).append(
                TaskSpec(function_id=function.id, args=payload, timeout=timeout)
            )
        for endpoint, batch_specs in by_endpoint.items():
            links: list[AgentLink] = []

            def connection(endpoint_id: str, links: list[AgentLink] = links) -> set[str] | None:
                link = services.hub.link(endpoint_id)
                if link is None:
                    return None
                links.append(link)
                return link.sent_functions()

            submitted = tasks.submit_batch(
                call.session,
                call.principal,
                TaskBatch(
                    endpoint=endpoint,
                    tasks=batch_specs,
                    task_group_id=group,
                    environment=environments[endpoint],
                ),
                payload_limit=services.settings.compute_payload_limit,
                connection=connection,
                checks=services.submit_checks,
            )
            call.after_commit.append(_sender(services, links, submitted))
        count = len(specs)
        return Progress(
            "ACTIVE", {"task_group_id": group, "tasks": count}, f"Running {count} task(s)", ref=group
        )

    def _rows(self, call: ActionCall) -> list[Task]:
        return list(
            call.session.scalars(
                select(Task)
                .where(Task.task_group_id == call.action.ref, Task.owner_id == call.action.creator_id)
                .order_by(Task.created_at, Task.id)
            )
        )

    def refresh(self, call: ActionCall) -> Progress | None:
        rows = self._rows(call)
        if not rows:
            return None
        done = [t for t in rows if t.state in TERMINAL_STATES]
        if len(done) < len(rows):
            return Progress("ACTIVE", None, f"{len(done)} of {len(rows)} task(s) done")
        results = []
        for task in rows:
            entry: dict[str, Any] = {"task_id": task.id, "status": task.state, "output": _output(task)}
            if task.error:
                entry["error"] = task.error.get("message")
                entry["error_code"] = task.error.get("code")
                if task.error.get("traceback"):
                    entry["traceback"] = task.error["traceback"][-4000:]
            results.append(entry)
        details: dict[str, Any] = {
            "task_group_id": call.action.ref,
            "results": results,
            "result": [entry["output"] for entry in results],
        }
        failed = [entry for entry in results if entry["status"] != "success"]
        if failed:
            first = failed[0]
            details["description"] = (
                f"{len(failed)} of {len(results)} task(s) failed; task {first['task_id']}: "
                f"{first.get('error_code')}: {first.get('error')}"
            )
            return Progress("FAILED", details, "Failed")
        return Progress("SUCCEEDED", details, "Succeeded")

    def cancel(self, call: ActionCall) -> Progress | None:
        ids = [t.id for t in self._rows(call) if t.state not in TERMINAL_STATES]
        if not ids:
            return self.refresh(call)
        hub = call.services.hub
        finished, signal = tasks.cancel_tasks(call.session, call.principal, ids, online=hub.online())

        def notify() -> None:
            hub.publish(finished)
            for endpoint_id, task_ids in signal.items():
                hub.cancel_on_agent(endpoint_id, task_ids)

        call.after_commit.append(notify)
        return Progress("FAILED", {"code": "Canceled", "description": "the tasks were canceled"}, "Canceled")

    def release(self, call: ActionCall) -> None:
        for task in self._rows(call):
            if task.state in TERMINAL_STATES:
                task.result = None
                task.result_released = True


def _sender(services: Any, links: list[AgentLink], submitted: tasks.Submitted) -> Callable[[], None]:
    def send() -> None:
        if links and submitted.dispatch is not None:
            services.hub.deliver(links[0], submitted.dispatch)
        else:
            services.hub.notify_endpoint(submitted.endpoint_id)

    return send
