"""The ``transfer`` and ``delete`` actions: managed transfer and delete tasks of the transfer domain.

Bodies are read in our own form (the fields of ``POST /v1/transfers`` / ``/v1/deletes``) and in the two
Globus forms, so a Globus flow runs unchanged:

* current (``transfer.actions.globus.org/transfer``): ``source_endpoint``, ``destination_endpoint``,
  ``DATA: [{source_path, destination_path, recursive}]``;
* legacy (``actions.globus.org/transfer/transfer``): ``source_endpoint_id``, ``destination_endpoint_id``,
  ``transfer_items: [...]``.

``sync_level`` may be Globus's number (0 exists, 1 size, 2 mtime, 3 checksum) or our name. The task is
written in the run's transaction with the action's request id as its ``submission_id`` (so it can
never be submitted twice); its end wakes the run. ``details`` is the task as ``GET /v1/transfers/{id}``
shows it, plus Globus's ``task_id``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from beamlink.errors import InvalidInput
from beamlink.protocol.flows import ProviderDescription
from beamlink.protocol.transfers import DeleteCreate, TransferCreate
from beamlink.service.flows.providers.base import ActionCall, Progress, Provider
from beamlink.service.transfer import transfers
from beamlink.service.transfer.models import Transfer

__all__ = ["DeleteProvider", "TransferProvider"]

_SYNC_LEVELS = {0: "exists", 1: "size", 2: "mtime", 3: "checksum"}
_OPTION_NAMES = {
    "sync_level": "sync_level",
    "verify_checksum": "verify_checksum",
    "preserve_timestamp": "preserve_timestamps",
    "preserve_timestamps": "preserve_timestamps",
    "delete_destination_extra": "delete_extra",
    "delete_extra": "delete_extra",
    "skip_source_errors": "skip_source_errors",
    "include": "include",
    "exclude": "exclude",
    "checksum_algorithm": "checksum_algorithm",
}
# Globus fields we accept and ignore (they tune Globus's own service).
_IGNORED = {
    "notify_on_succeeded",
    "notify_on_failed",
    "notify_on_inactive",
    "encrypt_data",
    "fail_on_quota_errors",
    "store_base_path_info",
    "filter_rules",
    "source_local_user",
    "destination_local_user",
    "verify_checksum_algo",
    "preserve_mtime",
    "recursive_symlinks",
    "perf_cc",
    "perf_p",
    "perf_pp",
    "perf_udt",
}


def _first(body: dict[str, Any], *names: str) -> Any:
    return next((body[name] for name in names if body.get(name) is not None), None)


def _sync_level(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in _SYNC_LEVELS:
        return _SYNC_LEVELS[value]
    raise InvalidInput(
        f"sync_level {value!r} is not one of 0, 1, 2, 3 or exists, size, mtime, checksum",
        details={"field": "sync_level"},
    )


def _invalid(exc: ValidationError, what: str) -> InvalidInput:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return InvalidInput(
        f"the {what} action's body is invalid at {where}: {error['msg']}", details={"field": where}
    )


def transfer_request(body: Any, submission_id: str) -> TransferCreate:
    """Our TransferCreate from any accepted body; ``submission_id`` makes submitting it idempotent."""
    if not isinstance(body, dict):
        raise InvalidInput("the transfer action's body must be an object", details={"field": "body"})
    source = _first(body, "source", "source_endpoint", "source_endpoint_id", "source_collection")
    destination = _first(
        body, "destination", "destination_endpoint", "destination_endpoint_id", "destination_collection"
    )
    items = _first(body, "items", "DATA", "transfer_items")
    options: dict[str, Any] = dict(body.get("options") or {})
    for name, ours in _OPTION_NAMES.items():
        if name in body:
            options[ours] = body[name]
    options["sync_level"] = _sync_level(options.get("sync_level"))
    known = {
        "source",
        "source_endpoint",
        "source_endpoint_id",
        "source_collection",
        "destination",
        "destination_endpoint",
        "destination_endpoint_id",
        "destination_collection",
        "items",
        "DATA",
        "transfer_items",
        "options",
        "label",
        "deadline",
        "submission_id",
        "DATA_TYPE",
        *_OPTION_NAMES,
        *_IGNORED,
    }
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidInput(
            f"the transfer action's body has unknown field(s) {unknown}: give source, destination and items "
            "(or Globus's source_endpoint, destination_endpoint and DATA)",
            details={"field": unknown[0]},
        )
    if isinstance(items, list):
        items = [
            {k: v for k, v in item.items() if k in ("source_path", "destination_path", "recursive")}
            if isinstance(item, dict)
            else item
            for item in items
        ]
    try:
        return TransferCreate.model_validate(
            {
                "source": source,
                "destination": destination,
                "items": items,
                "options": options,
                "label": body.get("label"),
                "deadline": body.get("deadline"),
                "submission_id": submission_id,
            }
        )
    except ValidationError as exc:
        raise _invalid(exc, "transfer") from None


def delete_request(body: Any, submission_id: str) -> DeleteCreate:
    if not isinstance(body, dict):
        raise InvalidInput("the delete action's body must be an object", details={"field": "body"})
    collection = _first(body, "collection", "endpoint", "endpoint_id")
    items = _first(body, "paths", "items", "DATA")
    paths = (
        [item.get("path") if isinstance(item, dict) else item for item in items]
        if isinstance(items, list)
        else items
    )
    recursive = body.get("recursive")
    if recursive is None and isinstance(items, list):
        recursive = any(isinstance(item, dict) and item.get("recursive") for item in items)
    try:
        return DeleteCreate.model_validate(
            {
                "collection": collection,
                "paths": paths,
                "recursive": bool(recursive),
                "ignore_missing": bool(body.get("ignore_missing", False)),
                "label": body.get("label"),
                "deadline": body.get("deadline"),
                "submission_id": submission_id,
            }
        )
    except ValidationError as exc:
        raise _invalid(exc, "delete") from None


class _TaskProvider(Provider):
    """What transfer and delete share: progress, cancel and release of one transfer-domain task."""

    def _task(self, call: ActionCall) -> Transfer | None:
        return call.session.get(Transfer, call.action.ref) if call.action.ref else None

    def _queued(self, call: ActionCall, transfer: Transfer) -> Progress:
        services = call.services
        destination = transfer.destination_id

        async def wake() -> None:
            await services.collections.send_jobs([destination])

        call.after_commit.append(wake)
        return self._progress(call, transfer)

    def _progress(self, call: ActionCall, transfer: Transfer) -> Progress:
        info = transfers.transfer_info(call.session, transfer).model_dump(mode="json")
        details = {**info, "task_id": transfer.id}
        if transfer.state == "FAILED" and transfer.error:
            details["code"] = transfer.error.get("code")
            details["description"] = transfer.error.get("message")
        status = (
            transfer.state if transfer.state in ("ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED") else "ACTIVE"
        )
        return Progress(status, details, info.get("status"), ref=transfer.id)  # type: ignore[arg-type]

    def refresh(self, call: ActionCall) -> Progress | None:
        transfer = self._task(call)
        return self._progress(call, transfer) if transfer is not None else None

    def cancel(self, call: ActionCall) -> Progress | None:
        transfer = self._task(call)
        if transfer is None:
            return None
        transfer, held = transfers.cancel_transfer(call.session, call.principal, transfer.id)
        services = call.services
        destination, transfer_id = transfer.destination_id, transfer.id

        async def stop() -> None:
            services.collections.changed([transfer_id])
            if held:
                await services.collections.cancel(destination, transfer_id, "its flow run was canceled")

        call.after_commit.append(stop)
        return self._progress(call, transfer)


class TransferProvider(_TaskProvider):
    name = "transfer"
    description = ProviderDescription(
        title="Transfer",
        subtitle="Move files between collections",
        description="Submits a managed transfer task (Globus Transfer action provider bodies accepted) and "
        "ends when it does; details are the task's counts and state.",
        keywords=["transfer", "globus transfer", "copy"],
        input_schema={
            "type": "object",
            "properties": {
                "source": {"type": "string"},
                "destination": {"type": "string"},
                "items": {"type": "array", "items": {"type": "object"}},
            },
        },
    )

    def start(self, call: ActionCall) -> Progress:
        request = transfer_request(call.action.body, call.action.id)
        transfer, _new = transfers.submit_transfer(
            call.session, call.principal, request, online=call.services.collections.online
        )
        return self._queued(call, transfer)


class DeleteProvider(_TaskProvider):
    name = "delete"
    description = ProviderDescription(
        title="Delete",
        subtitle="Delete paths in a collection",
        description="Submits an asynchronous (optionally recursive) delete task and ends when it does.",
        keywords=["delete", "rm"],
        input_schema={
            "type": "object",
            "properties": {
                "collection": {"type": "string"},
                "paths": {"type": "array"},
                "recursive": {"type": "boolean"},
            },
        },
    )

    def start(self, call: ActionCall) -> Progress:
        request = delete_request(call.action.body, call.action.id)
        transfer, _new = transfers.submit_delete(
            call.session, call.principal, request, online=call.services.collections.online
        )
        return self._queued(call, transfer)
