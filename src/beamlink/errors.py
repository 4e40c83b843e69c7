"""The one exception hierarchy of beamlink.

Every error that crosses a boundary (API, SDK, CLI, agent protocol) is one of these classes. Each class has
a stable ``code`` (a string clients may switch on) and the HTTP ``status`` the API answers with. The API
body is always ``{"code": ..., "message": ..., "details": ...}``; the SDK turns such a body back into the
same class with :func:`error_from_payload`, so ``except NotFound`` works the same in service code and in
user code.

::

    BeamlinkError (500 INTERNAL_ERROR)
    ├── InvalidInput (422 INVALID_INPUT)
    │   ├── ConfigError (422 CONFIG_ERROR)
    │   └── SerializationError (422 SERIALIZATION_ERROR)
    ├── AuthenticationFailed (401 AUTHENTICATION_FAILED)
    │   ├── InvalidCredentials (401 INVALID_CREDENTIALS)
    │   ├── TokenExpired (401 TOKEN_EXPIRED)
    │   └── TokenRevoked (401 TOKEN_REVOKED)
    ├── PermissionDenied (403 PERMISSION_DENIED)
    │   └── FunctionNotAllowed (403 FUNCTION_NOT_ALLOWED)
    ├── NotFound (404 NOT_FOUND)
    │   └── RouteNotFound (404 ROUTE_NOT_FOUND)
    ├── MethodNotAllowed (405 METHOD_NOT_ALLOWED)
    ├── Conflict (409 CONFLICT)
    │   ├── AlreadyExists (409 ALREADY_EXISTS)
    │   ├── EnvironmentMismatch (409 ENVIRONMENT_MISMATCH): submitter and endpoint Python/dill differ
    │   └── TaskPending (409 TASK_PENDING)
    ├── PayloadTooLarge (413 PAYLOAD_TOO_LARGE)
    │   └── ResultTooLarge (413 RESULT_TOO_LARGE)
    ├── ServiceUnavailable (503 SERVICE_UNAVAILABLE)
    │   └── ServiceUnreachable (503 SERVICE_UNREACHABLE)
    ├── StartupError (500 STARTUP_ERROR)
    └── TaskFailed (500 TASK_FAILED): why a compute task did not succeed
        ├── RemoteExecutionError (REMOTE_EXECUTION_ERROR): the function raised
        ├── WorkerLost (WORKER_LOST): the worker process died under the task
        ├── EndpointLost (ENDPOINT_LOST): the endpoint stayed away past the grace period
        ├── TaskTimeout (TASK_TIMEOUT): the task ran past its timeout
        └── TaskCancelled (TASK_CANCELLED)

Visibility rule: an object the caller may not see answers ``NotFound`` (404), exactly as if it did not
exist, so ids cannot be probed; an object the caller may see but not change answers ``PermissionDenied``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "AuthenticationFailed",
    "BeamlinkError",
    "ChecksumMismatch",
    "CollectionOffline",
    "ConfigError",
    "Conflict",
    "DestinationInsideSource",
    "DestinationNotWritable",
    "EndpointLost",
    "EnvironmentMismatch",
    "FunctionNotAllowed",
    "InvalidCredentials",
    "InvalidInput",
    "MethodNotAllowed",
    "NotFound",
    "PathOutsideCollection",
    "PayloadTooLarge",
    "PermissionDenied",
    "QuerySyntaxError",
    "RemoteExecutionError",
    "ResultTooLarge",
    "RouteNotFound",
    "SerializationError",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "SourceChanged",
    "SourceNotFound",
    "StartupError",
    "TaskCancelled",
    "TaskFailed",
    "TaskPending",
    "TaskTimeout",
    "TokenExpired",
    "TokenRevoked",
    "TransferOntoItself",
    "WaitTimeout",
    "WorkerLost",
    "error_from_payload",
]

_BY_CODE: dict[str, type[BeamlinkError]] = {}


class BeamlinkError(Exception):
    """Base of every beamlink error: a stable ``code``, an HTTP ``status``, a message and details."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Subclasses defined outside this module (a domain's PathOutsideCollection, say) register too,
        # so the SDK can raise them as long as the module defining them is imported.
        if "code" in cls.__dict__:
            _BY_CODE[cls.code] = cls

    def to_dict(self) -> dict[str, Any]:
        """The wire form the API answers with."""
        return {"code": self.code, "message": self.message, "details": self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, details={self.details!r})"


_BY_CODE[BeamlinkError.code] = BeamlinkError


class InvalidInput(BeamlinkError):
    """The request or a value in it is malformed; ``details`` names the field."""

    code = "INVALID_INPUT"
    status = 422


class ConfigError(InvalidInput):
    """A setting or a config file is wrong; the message names the key and where it came from."""

    code = "CONFIG_ERROR"
    status = 422


class AuthenticationFailed(BeamlinkError):
    """No usable credentials came with the request."""

    code = "AUTHENTICATION_FAILED"
    status = 401


class InvalidCredentials(AuthenticationFailed):
    """A username/password or client id/secret pair did not match (never says which part)."""

    code = "INVALID_CREDENTIALS"
    status = 401


class TokenExpired(AuthenticationFailed):
    """The bearer token is past its expiry; log in again."""

    code = "TOKEN_EXPIRED"
    status = 401


class TokenRevoked(AuthenticationFailed):
    """The bearer token was revoked; log in again."""

    code = "TOKEN_REVOKED"
    status = 401


class PermissionDenied(BeamlinkError):
    """The caller can see the object but may not do this to it."""

    code = "PERMISSION_DENIED"
    status = 403


class NotFound(BeamlinkError):
    """No such object, or one the caller may not see (the two are indistinguishable on purpose)."""

    code = "NOT_FOUND"
    status = 404


class RouteNotFound(NotFound):
    """No such API route."""

    code = "ROUTE_NOT_FOUND"
    status = 404


class MethodNotAllowed(BeamlinkError):
    """The route exists but not with this HTTP method."""

    code = "METHOD_NOT_ALLOWED"
    status = 405


class Conflict(BeamlinkError):
    """The request conflicts with the current state of the object."""

    code = "CONFLICT"
    status = 409


class AlreadyExists(Conflict):
    """An object with this unique name already exists."""

    code = "ALREADY_EXISTS"
    status = 409


class PayloadTooLarge(BeamlinkError):
    """A body or stored value is over its size limit; ``details`` names the limit."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class ServiceUnavailable(BeamlinkError):
    """The service cannot answer now (shutting down, database away)."""

    code = "SERVICE_UNAVAILABLE"
    status = 503


class ServiceUnreachable(ServiceUnavailable):
    """The SDK could not connect to the service at all."""

    code = "SERVICE_UNREACHABLE"
    status = 503


class StartupError(BeamlinkError):
    """The service refuses to start (database path not writable, port in use, ...)."""

    code = "STARTUP_ERROR"
    status = 500


class SerializationError(InvalidInput):
    """A value could not be serialized (client side) or deserialized (endpoint side)."""

    code = "SERIALIZATION_ERROR"
    status = 422


class FunctionNotAllowed(PermissionDenied):
    """The endpoint's ``allowed_functions`` does not list this function."""

    code = "FUNCTION_NOT_ALLOWED"
    status = 403


class EnvironmentMismatch(Conflict):
    """Submitter and endpoint run different Python minor or dill versions; the message names both."""

    code = "ENVIRONMENT_MISMATCH"
    status = 409


class TaskPending(Conflict):
    """The task has no result yet."""

    code = "TASK_PENDING"
    status = 409


class ResultTooLarge(PayloadTooLarge):
    """A task result is over the service's result size limit."""

    code = "RESULT_TOO_LARGE"
    status = 413


class TaskFailed(BeamlinkError):
    """A compute task ended without a result. ``remote_traceback`` holds the endpoint's traceback, if any."""

    code = "TASK_FAILED"
    status = 500

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, remote_traceback: str | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        if self.remote_traceback:
            return f"{self.message}\n\nRemote traceback:\n{self.remote_traceback}"
        return self.message


class RemoteExecutionError(TaskFailed):
    """The function raised an exception whose type could not be rebuilt here."""

    code = "REMOTE_EXECUTION_ERROR"


class WorkerLost(TaskFailed):
    """The worker process running the task died (``os._exit``, a segfault, the OOM killer)."""

    code = "WORKER_LOST"


class EndpointLost(TaskFailed):
    """The endpoint was disconnected past the grace period and the task had no retries left."""

    code = "ENDPOINT_LOST"


class TaskTimeout(TaskFailed):
    """The task ran longer than its ``timeout``."""

    code = "TASK_TIMEOUT"


class TaskCancelled(TaskFailed):
    """The task was cancelled before it finished."""

    code = "TASK_CANCELLED"


# -- collections and transfers ------------------------------------------------------------------------


class PathOutsideCollection(PermissionDenied):
    """A path leads out of the collection's root (``..``, an absolute escape, a symlink pointing out)."""

    code = "PATH_OUTSIDE_COLLECTION"
    status = 403


class SourceNotFound(NotFound):
    """The source path of a transfer does not exist."""

    code = "SOURCE_NOT_FOUND"
    status = 404


class DestinationNotWritable(PermissionDenied):
    """The collection agent may not write at the destination (file permissions, read-only storage)."""

    code = "DESTINATION_NOT_WRITABLE"
    status = 403


class TransferOntoItself(InvalidInput):
    """Source and destination of a transfer are the same path of the same collection."""

    code = "TRANSFER_ONTO_ITSELF"
    status = 422


class DestinationInsideSource(InvalidInput):
    """A recursive transfer's destination lies inside its own source, so it would copy into itself."""

    code = "DESTINATION_INSIDE_SOURCE"
    status = 422


class ChecksumMismatch(InvalidInput):
    """Received bytes do not hash to the digest sent with them; ``details`` holds both digests."""

    code = "CHECKSUM_MISMATCH"
    status = 422


class SourceChanged(Conflict):
    """The source file changed (size or modification time) while it was being copied."""

    code = "SOURCE_CHANGED"
    status = 409


class DataProtocolMismatch(Conflict):
    """Two collection agents speak different versions of the data plane (different beamlink versions);
    retrying cannot help."""

    code = "DATA_PROTOCOL_MISMATCH"
    status = 409


class CollectionOffline(ServiceUnavailable):
    """The collection's agent is not connected to the service."""

    code = "COLLECTION_OFFLINE"
    status = 503


class QuerySyntaxError(InvalidInput):
    """A search query ``q`` is not well formed; ``details.position`` is the 0-based offset of the mistake."""

    code = "QUERY_SYNTAX_ERROR"
    status = 400


class WaitTimeout(BeamlinkError):
    """A client gave up waiting for something to finish; the thing itself goes on."""

    code = "WAIT_TIMEOUT"
    status = 408


def error_from_payload(status: int, payload: Any) -> BeamlinkError:
    """Rebuild the error class the service raised from an API error body.

    Unknown codes fall back to the nearest class for the HTTP status, so an older SDK still raises
    something catchable.
    """
    if isinstance(payload, dict) and isinstance(payload.get("code"), str):
        cls = _BY_CODE.get(payload["code"])
        message = str(payload.get("message") or payload["code"])
        details = payload.get("details") if isinstance(payload.get("details"), dict) else {}
        if cls is None:
            cls = _BY_STATUS.get(status, BeamlinkError)
        return cls(message, details=details)
    cls = _BY_STATUS.get(status, BeamlinkError)
    text = payload if isinstance(payload, str) else repr(payload)
    return cls(f"HTTP {status}: {text[:500]}", details={"status": status})


_BY_STATUS: dict[int, type[BeamlinkError]] = {
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    503: ServiceUnavailable,
}
