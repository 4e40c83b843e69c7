"""The flow language's field tables: which fields each state type takes and how each is checked.

Each field maps to the name of a check in :mod:`beamlink.flowlang.validate` (``check_<name>``);
``transition`` fields (Next, End) are checked with the state's transitions.
"""

from __future__ import annotations

MAX_WAIT_SECONDS = 31_536_000  # one year, the Globus limit on Wait and on a run

MACHINE_FIELDS: tuple[str, ...] = ("StartAt", "States", "Comment")

_TRANSITION = {"Next": "transition", "End": "transition"}
_ERRORS = {"Catch": "catch", "Retry": "retry"}

STATE_FIELDS: dict[str, dict[str, str]] = {
    "Action": {
        "Type": "any",
        "Comment": "string",
        "ActionUrl": "action_url",
        "ActionScope": "string",
        "Parameters": "parameters",
        "InputPath": "path",
        "ResultPath": "result_path",
        "WaitTime": "wait_time",
        "ExceptionOnActionFailure": "boolean",
        "RunAs": "string",
        **_ERRORS,
        **_TRANSITION,
    },
    "ExpressionEval": {
        "Type": "any",
        "Comment": "string",
        "Parameters": "parameters",
        "ResultPath": "result_path",
        **_TRANSITION,
    },
    "Pass": {
        "Type": "any",
        "Comment": "string",
        "Parameters": "parameters",
        "InputPath": "path",
        "Result": "any",
        "ResultPath": "result_path",
        **_TRANSITION,
    },
    "Choice": {"Type": "any", "Comment": "string", "Choices": "choices", "Default": "default"},
    "Wait": {
        "Type": "any",
        "Comment": "string",
        "Seconds": "seconds",
        "Timestamp": "timestamp",
        "SecondsPath": "path",
        "TimestampPath": "path",
        **_TRANSITION,
    },
    "Fail": {
        "Type": "any",
        "Comment": "string",
        "Error": "string",
        "Cause": "string",
        "ErrorPath": "path",
        "CausePath": "path",
    },
    "Parallel": {
        "Type": "any",
        "Comment": "string",
        "Branches": "branches",
        "Parameters": "parameters",
        "InputPath": "path",
        "ResultPath": "result_path",
        **_ERRORS,
        **_TRANSITION,
    },
    "Map": {
        "Type": "any",
        "Comment": "string",
        "ItemsPath": "path",
        "Iterator": "iterator",
        "ItemProcessor": "iterator",
        "MaxConcurrency": "non_negative_int",
        "Parameters": "parameters",
        "ItemSelector": "parameters",
        "InputPath": "path",
        "ResultPath": "result_path",
        **_ERRORS,
        **_TRANSITION,
    },
}

REQUIRED: dict[str, tuple[str, ...]] = {
    "Action": ("ActionUrl",),
    "ExpressionEval": ("Parameters", "ResultPath"),
    "Pass": (),
    "Choice": ("Choices",),
    "Wait": (),
    "Fail": (),
    "Parallel": ("Branches",),
    "Map": (),
}

#: (fields, rule): "one" = exactly one of them; "at_most_one" = never two of them.
EXCLUSIVE: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "Action": ((("Parameters", "InputPath"), "one"),),
    "Pass": ((("Parameters", "Result"), "at_most_one"), (("Parameters", "InputPath"), "at_most_one")),
    "Wait": ((("Seconds", "Timestamp", "SecondsPath", "TimestampPath"), "one"),),
    "Fail": ((("Error", "ErrorPath"), "at_most_one"), (("Cause", "CausePath"), "at_most_one")),
    "Parallel": ((("Parameters", "InputPath"), "at_most_one"),),
    "Map": ((("Iterator", "ItemProcessor"), "one"), (("Parameters", "ItemSelector"), "at_most_one")),
}

CATCHER_FIELDS: tuple[str, ...] = ("ErrorEquals", "Next", "ResultPath", "Comment")
RETRIER_FIELDS: tuple[str, ...] = (
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "Comment",
)
#: (field, bound, rule) for the numbers of a Retry entry.
RETRIER_NUMBERS: tuple[tuple[str, float, str], ...] = (
    ("IntervalSeconds", 0, "at least"),
    ("BackoffRate", 1, "at least"),
    ("MaxDelaySeconds", 0, "more than"),
)

#: Hints for fields people bring from the Amazon States Language or write by mistake.
FIELD_HINTS: dict[str, str] = {
    "OutputPath": "Globus flows have no OutputPath; store results with ResultPath",
    "ResultSelector": "not supported; shape the result in a following Pass or ExpressionEval state",
    "TimeoutSeconds": "use WaitTime on Action states",
    "HeartbeatSeconds": "use WaitTime on Action states",
    "JitterStrategy": (
        "not supported: retry delays are deterministic so that a replayed step gives the same answer"
    ),
    "Resource": "Globus flows call actions with Type Action and ActionUrl",
    "Version": "not used; remove it",
}

#: Hints for Amazon States Language types that Globus flows spell differently.
TYPE_HINTS: dict[str, str] = {
    "Task": 'use "Type": "Action" with an ActionUrl',
    "Succeed": 'use a Pass state with "End": true',
}

REQUIRED_HINTS: dict[str, str] = {
    "ActionUrl": "the URL of the action provider, or beamlink:<name> for a built-in",
    "Parameters": "an object; keys ending in .$ take JSONPaths, keys ending in .= take expressions",
    "ResultPath": 'where to store the result, e.g. "$.Result"',
    "Choices": "a list of rules, each with Next",
    "Branches": "a list of state machines, each with StartAt and States",
}

EXPRESSION_HINT = "expressions name run-state keys without '$.', e.g. \"input.path + '/' + input.name\""
