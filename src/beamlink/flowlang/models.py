"""Typed, immutable models of a flow definition (what :func:`load_definition` returns).

Field names are snake_case with the definition's PascalCase names as aliases, so
``FlowDefinition.model_validate(document)`` reads a definition as written. The models trust their
input: :func:`beamlink.flowlang.validate` checks a document first and reports every problem with a
JSON pointer; these models only give the checked document types.

Absent is not null: an absent ``ResultPath`` is ``"$"`` (the result replaces the whole run state, as
Globus defines it) while ``"ResultPath": null`` is ``None`` (the result is discarded, as in the Amazon
States Language).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "COMPARATORS",
    "STATE_TYPES",
    "ActionState",
    "Catcher",
    "ChoiceRule",
    "ChoiceState",
    "ExpressionEvalState",
    "FailState",
    "FlowDefinition",
    "MapState",
    "ParallelState",
    "PassState",
    "Retrier",
    "State",
    "StateMachine",
    "WaitState",
]

#: The state types beamlink runs: the six of Globus Flows, then the two ASL ones Globus lacks.
STATE_TYPES: tuple[str, ...] = (
    "Action",
    "ExpressionEval",
    "Pass",
    "Choice",
    "Wait",
    "Fail",
    "Parallel",
    "Map",
)

#: Choice comparison operators and the kind of operand each takes.
COMPARATORS: dict[str, str] = {
    **{
        f"String{op}": "string"
        for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    },
    **{
        f"Numeric{op}": "numeric"
        for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    },
    **{
        f"Timestamp{op}": "timestamp"
        for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    },
    "BooleanEquals": "boolean",
    **{
        f"{kind}{op}Path": "path"
        for kind in ("String", "Numeric", "Timestamp")
        for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    },
    "BooleanEqualsPath": "path",
    "StringMatches": "pattern",
    "IsNull": "flag",
    "IsPresent": "flag",
    "IsNumeric": "flag",
    "IsString": "flag",
    "IsBoolean": "flag",
    "IsTimestamp": "flag",
}

_CONFIG = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")


class Retrier(BaseModel):
    """One ``Retry`` entry (Amazon States Language form; a beamlink extension on Action/Parallel/Map)."""

    model_config = _CONFIG

    error_equals: list[str] = Field(alias="ErrorEquals", description="error names this retrier handles")
    interval_seconds: float = Field(1.0, alias="IntervalSeconds", description="delay before the first retry")
    max_attempts: int = Field(3, alias="MaxAttempts", description="retries before giving up; 0 never retries")
    backoff_rate: float = Field(2.0, alias="BackoffRate", description="multiplier of the delay per retry")
    max_delay_seconds: float | None = Field(None, alias="MaxDelaySeconds", description="cap on one delay")
    comment: str | None = Field(None, alias="Comment")

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (0 for the first retry)."""
        seconds = self.interval_seconds * self.backoff_rate**retry_number
        if self.max_delay_seconds is not None:
            seconds = min(seconds, self.max_delay_seconds)
        return float(seconds)


class Catcher(BaseModel):
    """One ``Catch`` entry: where to go, and where to put ``{"Error", "Cause"}``, for matching errors."""

    model_config = _CONFIG

    error_equals: list[str] = Field(alias="ErrorEquals")
    next: str = Field(alias="Next")
    result_path: str | None = Field("$", alias="ResultPath")
    comment: str | None = Field(None, alias="Comment")


class ChoiceRule(BaseModel):
    """A Choice rule: ``And``/``Or``/``Not`` of rules, or ``Variable`` with one comparison operator.

    The operator is kept by name (``operator``, e.g. ``"NumericGreaterThan"``) with its ``operand``;
    top-level rules carry ``next``, nested ones do not.
    """

    model_config = _CONFIG

    variable: str | None = None
    operator: str | None = None
    operand: Any = None
    and_: list[ChoiceRule] | None = None
    or_: list[ChoiceRule] | None = None
    not_: ChoiceRule | None = None
    next: str | None = None
    comment: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_definition(cls, data: Any) -> Any:
        # Definitions name the operator as a key ("NumericEquals": 3); keep it as data instead so the
        # model does not need forty optional fields.
        if not isinstance(data, dict) or "operator" in data or "and_" in data:
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in COMPARATORS:
                out["operator"], out["operand"] = key, value
            elif key in ("And", "Or"):
                out[key.lower() + "_"] = value
            elif key == "Not":
                out["not_"] = value
            else:
                out[key.lower()] = value
        return out


class _Base(BaseModel):
    model_config = _CONFIG

    comment: str | None = Field(None, alias="Comment")


class _Transition(_Base):
    next: str | None = Field(None, alias="Next")
    end: bool = Field(False, alias="End")


class ActionState(_Transition):
    """Invoke an action provider and store its final action status document at ``ResultPath``."""

    type: Literal["Action"] = Field(alias="Type")
    action_url: str = Field(alias="ActionUrl")
    action_scope: str | None = Field(None, alias="ActionScope")
    parameters: dict[str, Any] | None = Field(None, alias="Parameters")
    input_path: str | None = Field(None, alias="InputPath")
    result_path: str | None = Field("$", alias="ResultPath")
    wait_time: float = Field(300, alias="WaitTime", description="seconds before ActionTimeout")
    exception_on_action_failure: bool = Field(True, alias="ExceptionOnActionFailure")
    run_as: str = Field("User", alias="RunAs")
    catch: list[Catcher] = Field(default_factory=list, alias="Catch")
    retry: list[Retrier] = Field(default_factory=list, alias="Retry")


class ExpressionEvalState(_Transition):
    """Evaluate ``Parameters`` (constants, ``.$`` references, ``.=`` expressions) into ``ResultPath``."""

    type: Literal["ExpressionEval"] = Field(alias="Type")
    parameters: dict[str, Any] = Field(alias="Parameters")
    result_path: str | None = Field(alias="ResultPath")


class PassState(_Transition):
    """Move or reshape state: ``Result``, evaluated ``Parameters`` or the ``InputPath`` value."""

    type: Literal["Pass"] = Field(alias="Type")
    parameters: dict[str, Any] | None = Field(None, alias="Parameters")
    input_path: str | None = Field(None, alias="InputPath")
    result: Any = Field(None, alias="Result")
    has_result: bool = Field(False, description="whether the definition had a Result (null included)")
    result_path: str | None = Field("$", alias="ResultPath")

    @model_validator(mode="before")
    @classmethod
    def _note_result(cls, data: Any) -> Any:
        # "Result": null is a result; only the model can no longer tell it from an absent one.
        if isinstance(data, dict) and "Result" in data and "has_result" not in data:
            return {**data, "has_result": True}
        return data


class ChoiceState(_Base):
    """Go to the ``Next`` of the first matching rule, else to ``Default``."""

    type: Literal["Choice"] = Field(alias="Type")
    choices: list[ChoiceRule] = Field(alias="Choices")
    default: str | None = Field(None, alias="Default")


class WaitState(_Transition):
    """Pause for ``Seconds``/``SecondsPath`` or until ``Timestamp``/``TimestampPath``."""

    type: Literal["Wait"] = Field(alias="Type")
    seconds: float | None = Field(None, alias="Seconds")
    timestamp: str | None = Field(None, alias="Timestamp")
    seconds_path: str | None = Field(None, alias="SecondsPath")
    timestamp_path: str | None = Field(None, alias="TimestampPath")


class FailState(_Base):
    """End the run (or the branch) as failed with ``Error`` and ``Cause`` (or their ``...Path``)."""

    type: Literal["Fail"] = Field(alias="Type")
    error: str | None = Field(None, alias="Error")
    cause: str | None = Field(None, alias="Cause")
    error_path: str | None = Field(None, alias="ErrorPath")
    cause_path: str | None = Field(None, alias="CausePath")


class StateMachine(BaseModel):
    """``StartAt`` plus ``States``: a whole flow, a ``Parallel`` branch or a ``Map`` iterator."""

    model_config = _CONFIG

    start_at: str = Field(alias="StartAt")
    states: dict[str, State] = Field(alias="States")
    comment: str | None = Field(None, alias="Comment")
    processor_config: dict[str, Any] | None = Field(None, alias="ProcessorConfig")


class ParallelState(_Transition):
    """Run every branch on a copy of the input; the result is the list of branch outputs (extension)."""

    type: Literal["Parallel"] = Field(alias="Type")
    branches: list[StateMachine] = Field(alias="Branches")
    parameters: dict[str, Any] | None = Field(None, alias="Parameters")
    input_path: str | None = Field(None, alias="InputPath")
    result_path: str | None = Field("$", alias="ResultPath")
    catch: list[Catcher] = Field(default_factory=list, alias="Catch")
    retry: list[Retrier] = Field(default_factory=list, alias="Retry")


class MapState(_Transition):
    """Run ``Iterator`` once per item of ``ItemsPath``; the result is the list of outputs (extension)."""

    type: Literal["Map"] = Field(alias="Type")
    items_path: str = Field("$", alias="ItemsPath")
    iterator: StateMachine = Field(alias="Iterator")
    max_concurrency: int = Field(0, alias="MaxConcurrency", description="0 means no limit")
    item_selector: dict[str, Any] | None = Field(None, alias="ItemSelector")
    input_path: str | None = Field(None, alias="InputPath")
    result_path: str | None = Field("$", alias="ResultPath")
    catch: list[Catcher] = Field(default_factory=list, alias="Catch")
    retry: list[Retrier] = Field(default_factory=list, alias="Retry")

    @model_validator(mode="before")
    @classmethod
    def _asl_names(cls, data: Any) -> Any:
        # ASL renamed Iterator to ItemProcessor and Parameters to ItemSelector; accept both spellings.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "ItemProcessor" in data:
            data["Iterator"] = data.pop("ItemProcessor")
        if "Parameters" in data:
            data["ItemSelector"] = data.pop("Parameters")
        return data


State = Annotated[
    ActionState
    | ExpressionEvalState
    | PassState
    | ChoiceState
    | WaitState
    | FailState
    | ParallelState
    | MapState,
    Field(discriminator="type"),
]


class FlowDefinition(StateMachine):
    """A whole, validated flow definition. Build one with :func:`beamlink.flowlang.load_definition`."""

    def machine(self, scope: list[str]) -> StateMachine:
        """The state machine at ``scope`` (``["Fan#0"]`` = branch 0 of Parallel ``Fan``; ``["Each"]`` =
        the iterator of Map ``Each``), as recorded by the step function for branch frames."""
        machine: StateMachine = self
        for part in scope:
            name, _, index = part.partition("#")
            state = machine.states[name]
            if isinstance(state, ParallelState):
                machine = state.branches[int(index)]
            elif isinstance(state, MapState):
                machine = state.iterator
            else:
                raise KeyError(f"state {name!r} has no sub-machine")
        return machine


ChoiceRule.model_rebuild()
StateMachine.model_rebuild()
ParallelState.model_rebuild()
MapState.model_rebuild()
FlowDefinition.model_rebuild()
