"""Errors of the flow language, inside the project's one hierarchy (:mod:`beamlink.errors`).

::

    InvalidInput (422 INVALID_INPUT)
    ├── FlowInvalid (422 FLOW_INVALID)            a definition with problems; details["problems"]
    └── FlowInputInvalid (422 FLOW_INPUT_INVALID)  a run input that fails the flow's input schema
    BeamlinkError
    └── StatesError (422 FLOW_STATE_ERROR)        a run-time error with a Globus/ASL error name

``StatesError`` is what path look-ups and expressions raise while a run is stepped; the step function
routes it through ``Retry``/``Catch`` by its ``error`` name (``States.ParameterPathFailure``, ...), so
it rarely escapes. Callers that evaluate parameters outside a run (a "dry run" endpoint) may see it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from beamlink.errors import BeamlinkError, InvalidInput
from beamlink.flowlang.problems import Problem

__all__ = [
    "FlowInputInvalid",
    "FlowInvalid",
    "StatesError",
]


def _summary(what: str, problems: list[Problem]) -> str:
    errors = [p for p in problems if p.severity == "error"]
    first = errors[0] if errors else (problems[0] if problems else None)
    if first is None:
        return f"{what} is invalid"
    where = first.pointer or "/"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{what} is invalid: {where}: {first.message}{more}"


class _ProblemsError(InvalidInput):
    """An ``InvalidInput`` whose ``details["problems"]`` lists :class:`Problem` records.

    Built from the problems (``FlowInvalid(problems)``), or, as the SDK does from an API body, from a
    message and details (``FlowInvalid(message, details=...)``).
    """

    what: ClassVar[str] = "input"

    def __init__(self, problems: list[Problem] | str, *, details: dict[str, Any] | None = None) -> None:
        if isinstance(problems, str):
            super().__init__(problems, details=details)
            return
        super().__init__(
            _summary(self.what, problems),
            details={"problems": [p.model_dump(mode="json") for p in problems]},
        )

    @property
    def problems(self) -> list[Problem]:
        """The problems, as :class:`Problem` records."""
        return [Problem.model_validate(p) for p in self.details.get("problems", [])]


class FlowInvalid(_ProblemsError):
    """A flow definition has one or more problems; ``details["problems"]`` lists every one of them."""

    code = "FLOW_INVALID"
    status = 422
    what = "flow definition"


class FlowInputInvalid(_ProblemsError):
    """A run input does not match the flow's input schema; ``details["problems"]`` names each field."""

    code = "FLOW_INPUT_INVALID"
    status = 422
    what = "run input"


class StatesError(BeamlinkError):
    """A run-time error of a state, named as Globus/ASL name it (``error``) with a human ``cause``."""

    code = "FLOW_STATE_ERROR"
    status = 422

    def __init__(self, error: str, cause: str = "", *, details: dict[str, Any] | None = None) -> None:
        extra = dict(details or {})
        if not cause and "error" in extra:
            # Rebuilt from an API body (message, details): the details hold the real pair.
            error, cause = str(extra["error"]), str(extra.get("cause", ""))
        super().__init__(f"{error}: {cause}", details={**extra, "error": error, "cause": cause})
        self.error = error
        self.cause = cause
