"""How functions, arguments, results and exceptions travel: base64 text of dill pickles.

Used by the SDK (to register and submit, and to read results) and by endpoints (to run); never by the
service, which stores these payloads as opaque text. Functions are pickled *by value* (code, referenced
globals, closures), so a function defined in a notebook, a script or a test module runs on an endpoint
that cannot import that module. The source text travels beside it when it can be read, as a fallback
when the pickle cannot be loaded.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import importlib.metadata
import inspect
import json
import platform
import sys
import sysconfig
import textwrap
import traceback
import types
from collections.abc import Callable, Iterator
from typing import Any

import dill

import beamlink
from beamlink import errors
from beamlink.errors import SerializationError
from beamlink.protocol.compute import (
    JSON_PAYLOAD_PREFIX,
    Environment,
    FunctionCode,
    TaskError,
    is_json_payload,
    read_json_payload,
)

__all__ = [
    "environment",
    "exception_from_error",
    "function_source",
    "load_function",
    "pack",
    "pack_arguments",
    "pack_exception",
    "pack_json",
    "serialize_function",
    "unpack",
    "unpack_arguments",
]


@functools.cache
def environment() -> Environment:
    """This interpreter's Python and dill versions (what must match for payloads to load)."""
    return Environment(
        python_version=platform.python_version(),
        dill_version=str(dill.__version__),
        beamlink_version=beamlink.__version__,
        platform=f"{platform.system()}-{platform.machine()}",
    )


def pack(value: Any) -> str:
    """base64 of ``dill.dumps(value)``; SerializationError names the type that could not be pickled."""
    try:
        raw = dill.dumps(value, recurse=True)
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize a value of type {type(value).__qualname__}: {exc}. Pass plain data (numbers, "
            "strings, lists, dicts, NumPy arrays) or a path to a file instead",
            details={"type": type(value).__qualname__},
        ) from exc
    return base64.b64encode(raw).decode("ascii")


def pack_json(value: Any) -> str:
    """The JSON form of a return value (tasks whose arguments came as JSON, i.e. from flows)."""
    try:
        return JSON_PAYLOAD_PREFIX + json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"a flow needs a JSON result, and a value of type {type(value).__qualname__} is not JSON "
            f"({exc}): return plain data (dicts, lists, strings, numbers), or write the value to a file "
            "and return its path",
            details={"type": type(value).__qualname__},
        ) from exc


def unpack(text: str) -> Any:
    if is_json_payload(text):
        return read_json_payload(text)
    try:
        return dill.loads(base64.b64decode(text.encode("ascii"), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise SerializationError(f"not a beamlink payload (bad base64): {exc}") from exc


def pack_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """One payload for a call's arguments; the error names the argument that cannot be serialized."""
    try:
        return pack((args, kwargs))
    except SerializationError:
        pass
    for index, value in enumerate(args):
        _check_argument(f"positional argument {index}", value)
    for key, value in kwargs.items():
        _check_argument(f"keyword argument {key!r}", value)
    return pack((args, kwargs))  # pragma: no cover - one of the checks above raised


def _check_argument(label: str, value: Any) -> None:
    try:
        dill.dumps(value, recurse=True)
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {label} (a {type(value).__qualname__}): {exc}. Pass plain data, or open the "
            "resource inside the function instead of passing it",
            details={"argument": label, "type": type(value).__qualname__},
        ) from exc


def unpack_arguments(text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if is_json_payload(text):
        try:
            document = read_json_payload(text)
        except ValueError as exc:
            raise SerializationError(f"the JSON arguments payload is not JSON: {exc}") from exc
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("args", []), list)
            or not isinstance(document.get("kwargs", {}), dict)
        ):
            raise SerializationError('the JSON arguments payload is not {"args": [...], "kwargs": {...}}')
        return tuple(document.get("args", [])), dict(document.get("kwargs", {}))
    value = unpack(text)
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not isinstance(value[0], tuple)
        or not isinstance(value[1], dict)
    ):
        raise SerializationError("the arguments payload is not an (args, kwargs) pair")
    return value[0], value[1]


def function_source(fn: Callable[..., Any]) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None


@functools.cache
def _installed_packages() -> frozenset[str]:
    """Top-level names of installed distributions, editable installs included (beamlink's own apps, a
    facility's package): an endpoint imports those as the submitter does."""
    return frozenset(importlib.metadata.packages_distributions())


def _importable_everywhere(module_name: str | None) -> bool:
    """Installed packages and the standard library: pickling a reference is smaller and version-proof."""
    module = sys.modules.get(module_name or "")
    path = getattr(module, "__file__", None) or ""
    if module is None or module_name == "__main__":
        return False
    if not path:
        return True  # built-in module
    if "site-packages" in path or "dist-packages" in path or path.startswith(_STDLIB):
        return True
    return (module_name or "").partition(".")[0] in _installed_packages()


_STDLIB = sysconfig.get_paths()["stdlib"]


def _by_value(fn: Callable[..., Any]) -> Any:
    """A copy of a plain function that dill pickles with its code, not as a module reference."""
    if not isinstance(fn, types.FunctionType) or _importable_everywhere(fn.__module__):
        return fn
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__qualname__ = fn.__qualname__
    copy.__doc__ = fn.__doc__
    copy.__module__ = "__main__"
    return copy


def _module_neighbours(fn: types.FunctionType) -> list[Any]:
    """Functions and classes of fn's own module that fn uses, directly or through each other."""
    found: dict[int, Any] = {}
    work = [fn]
    while work:
        current = work.pop()
        names: set[str] = set()
        codes = [current.__code__]
        while codes:
            code = codes.pop()
            names.update(code.co_names)
            codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        for name in names:
            value = current.__globals__.get(name)
            if (
                isinstance(value, type | types.FunctionType)
                and getattr(value, "__module__", None) == fn.__module__
                and id(value) not in found
            ):
                found[id(value)] = value
                if isinstance(value, types.FunctionType):
                    work.append(value)
    return list(found.values())


@contextlib.contextmanager
def _pickled_by_value(fn: Callable[..., Any]) -> Iterator[None]:
    """While pickling ``fn``, make the helpers and classes of its module travel by value too.

    dill pickles objects of ``__main__`` by value and everything else by reference, which fails on an
    endpoint that cannot import the submitter's module (a script, a test file, a notebook helper).
    Classes keep their real module in ``__beamlink_module__``, so an exception of such a class comes
    back to the submitter as the submitter's own class.
    """
    if not isinstance(fn, types.FunctionType) or _importable_everywhere(fn.__module__):
        yield
        return
    neighbours = _module_neighbours(fn)
    for obj in neighbours:
        if isinstance(obj, type):
            obj.__beamlink_module__ = obj.__module__  # type: ignore[attr-defined]
        obj.__module__ = "__main__"
    try:
        yield
    finally:
        for obj in neighbours:
            if isinstance(obj, type):
                obj.__module__ = obj.__dict__["__beamlink_module__"]
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(obj, "__beamlink_module__")
            else:
                obj.__module__ = fn.__module__


def serialize_function(fn: Callable[..., Any]) -> tuple[str, str, str | None]:
    """(name, serialized, source) of a callable, ready for registration."""
    if not callable(fn):
        raise SerializationError(f"expected a function, got a {type(fn).__qualname__}")
    name = getattr(fn, "__name__", type(fn).__name__)
    try:
        with _pickled_by_value(fn):
            serialized = pack(_by_value(fn))
    except SerializationError as exc:
        raise SerializationError(
            f"cannot serialize function {name!r}: {exc.message}", details={"function": name}
        ) from exc
    return name, serialized, function_source(fn)


def load_function(code: FunctionCode) -> Callable[..., Any]:
    """The callable, from its pickle or, when that fails to load, from its source text."""
    try:
        fn = unpack(code.serialized)
    except Exception as exc:
        if not code.source:
            raise SerializationError(
                f"cannot load function {code.name!r} ({type(exc).__name__}: {exc}); it was registered "
                f"from {code.environment.python_version} / dill {code.environment.dill_version}. Register it "
                "again from a matching environment",
                details={"function_id": code.id},
            ) from exc
        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec(compile(code.source, f"<function {code.name}>", "exec"), namespace)
        fn = namespace.get(code.name)
        if fn is None:
            raise SerializationError(
                f"the source of function {code.name!r} does not define {code.name!r}",
                details={"function_id": code.id},
            ) from exc
    if not callable(fn):
        raise SerializationError(f"function {code.name!r} did not load as a callable")
    return fn  # type: ignore[no-any-return]


def pack_exception(exc: BaseException, *, code: str = errors.RemoteExecutionError.code) -> TaskError:
    """Describe an exception raised by a function: its type, message, traceback and pickled self."""
    kind = type(exc)
    text = "".join(traceback.format_exception(exc))
    try:
        raw = dill.dumps(exc)
        dill.loads(raw)
        pickled: str | None = base64.b64encode(raw).decode("ascii")
    except Exception:  # exceptions with odd constructors often pickle but do not unpickle
        pickled = None
    return TaskError(
        code=code,
        message=f"{kind.__qualname__}: {exc}",
        type_name=f"{getattr(kind, '__beamlink_module__', None) or kind.__module__}.{kind.__qualname__}",
        traceback=text,
        exception=pickled,
    )


def _as_local_type(exc: BaseException, type_name: str | None) -> BaseException:
    """The same exception as an instance of the submitter's own class, when that class was sent by value."""
    module_name, _, qualname = (type_name or "").rpartition(".")
    module = sys.modules.get(module_name)
    local: Any = module
    for part in qualname.split("."):
        local = getattr(local, part, None)
    if not isinstance(local, type) or not issubclass(local, BaseException) or isinstance(exc, local):
        return exc
    rebuilt = local.__new__(local)
    rebuilt.args = exc.args
    with contextlib.suppress(AttributeError, TypeError):
        rebuilt.__dict__.update(vars(exc))
    return rebuilt


def exception_from_error(error: TaskError) -> BaseException:
    """The exception the SDK raises for a failed task.

    A remote exception comes back as its own type when it can be rebuilt here (with the remote traceback
    as a note and as ``remote_traceback``); otherwise as :class:`~beamlink.errors.RemoteExecutionError`.
    Failures of the system (WorkerLost, TaskTimeout, EnvironmentMismatch, ...) come back as their class.
    """
    if error.code == errors.RemoteExecutionError.code and error.exception:
        try:
            exc = dill.loads(base64.b64decode(error.exception.encode("ascii")))
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            exc = _as_local_type(exc, error.type_name)
            if error.traceback:
                exc.add_note(f"Remote traceback:\n{error.traceback}")
            exc.remote_traceback = error.traceback  # type: ignore[attr-defined]
            return exc
    rebuilt = errors.error_from_payload(500, {"code": error.code, "message": error.message})
    if isinstance(rebuilt, errors.TaskFailed):
        rebuilt.remote_traceback = error.traceback
    return rebuilt
