"""Check a flow definition and report every problem at once, each with a JSON pointer and a hint.

Structure (fields per state type, their value types, required and exclusive fields) is checked here
from the tables in :mod:`beamlink.flowlang._fields`; JSONPaths go to jsonpath-ng, expressions to the
expression checker, action URLs to the :class:`ActionRegistry`; the transition graph of every state
machine (the flow, each Parallel branch, each Map iterator) is checked last: unknown targets,
unreachable states, no terminal state, states from which no end can be reached.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from beamlink.flowlang import _fields as fields
from beamlink.flowlang.actions import BUILTIN_PROVIDERS, DEFAULT_REGISTRY, ActionRegistry
from beamlink.flowlang.choice import parse_timestamp
from beamlink.flowlang.expressions import check_expression
from beamlink.flowlang.models import COMPARATORS, STATE_TYPES
from beamlink.flowlang.parameters import PRIVATE_PARAMETERS_KEY, parameter_name
from beamlink.flowlang.paths import check_path, check_reference_path
from beamlink.flowlang.problems import Problem, Severity, pointer

__all__ = ["validate_document"]

Path = tuple[str | int, ...]


def _close(word: str, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


def _a(word: str) -> str:
    return ("an " if word[:1] in "AEIOU" else "a ") + word


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


class _Machine:
    """What the graph check needs to know about one state machine."""

    def __init__(self, path: Path, names: set[str]) -> None:
        self.path = path
        self.names = names
        self.edges: dict[str, list[str]] = {name: [] for name in names}
        self.terminal: set[str] = set()
        self.broken: set[str] = set()  # states with a transition to no known state


class _Validator:
    def __init__(self, registry: ActionRegistry) -> None:
        self.registry = registry
        self.problems: list[Problem] = []

    # -- reporting -------------------------------------------------------------------------------------

    def add(self, path: Path, code: str, message: str, hint: str = "", severity: Severity = "error") -> None:
        self.problems.append(
            Problem(pointer=pointer(*path), code=code, message=message, hint=hint, severity=severity)
        )

    def wrong_type(self, path: Path, value: Any, expected: str) -> None:
        self.add(path, "wrong_type", f"must be {expected}, not {_json_type(value)}", f"write {expected} here")

    def unknown_fields(self, obj: dict[str, Any], path: Path, allowed: Iterable[str], what: str) -> None:
        allowed = set(allowed)
        for key in obj:
            if key not in allowed:
                self.unknown_field(key, path, allowed, what)

    def unknown_field(self, key: str, path: Path, allowed: Iterable[str], what: str) -> None:
        hint = fields.FIELD_HINTS.get(key) or _close(str(key), allowed)
        if not hint:
            owners = [t for t, spec in fields.STATE_FIELDS.items() if key in spec]
            hint = (
                f"{key} belongs to {', '.join(owners)} states"
                if owners
                else f"allowed: {', '.join(sorted(allowed))}"
            )
        self.add((*path, key), "unknown_field", f"{key!r} is not a field of {what}", hint)

    # -- state machines ----------------------------------------------------------------------------------

    def machine(self, doc: Any, path: Path, *, allowed: Iterable[str] = fields.MACHINE_FIELDS) -> None:
        if not isinstance(doc, dict):
            self.wrong_type(path, doc, "an object with StartAt and States")
            return
        self.unknown_fields(doc, path, allowed, "a state machine")
        if "ProcessorConfig" in doc:
            self.processor_config(doc["ProcessorConfig"], (*path, "ProcessorConfig"))
        states = doc.get("States")
        if "States" not in doc:
            self.add(
                path,
                "missing_field",
                "StartAt and States are required; States is missing",
                "add a States object",
            )
            states = {}
        elif not isinstance(states, dict):
            self.wrong_type((*path, "States"), states, "an object mapping state names to states")
            states = {}
        elif not states:
            self.add((*path, "States"), "bad_value", "States is empty", "add at least one state")
        machine = _Machine(path, set(states))
        if "Comment" in doc and not isinstance(doc["Comment"], str):
            self.wrong_type((*path, "Comment"), doc["Comment"], "a string")
        start = doc.get("StartAt")
        if "StartAt" not in doc:
            self.add(
                path, "missing_field", "StartAt is required", 'name the first state: "StartAt": "<state>"'
            )
        elif not isinstance(start, str):
            self.wrong_type((*path, "StartAt"), start, "a string naming a state")
        elif states and start not in states:
            hint = _close(start, states) or f"states are: {', '.join(sorted(map(str, states)))}"
            self.add(
                (*path, "StartAt"), "bad_start_at", f"StartAt names {start!r}, which is not a state", hint
            )
        for name, state in states.items():
            if not isinstance(name, str) or not name:
                # YAML reads an unquoted "1:" as a number; JSON cannot, so say what to write.
                self.add(
                    (*path, "States", name),
                    "wrong_type",
                    f"state name {name!r} must be a non-empty string",
                    "quote the name in YAML",
                )
            self.state(state, (*path, "States", name), machine)
        if isinstance(start, str) and start in states:
            self.graph(machine, start)

    def graph(self, machine: _Machine, start: str) -> None:
        # A broken transition hides where the author meant to go, so the states it would have reached
        # are not reported as unreachable and the state itself counts as a possible end: the one
        # unknown_next problem says it all.
        reachable, todo = {start}, [start]
        while todo:
            for target in machine.edges[todo.pop()]:
                if target not in reachable:
                    reachable.add(target)
                    todo.append(target)
        for name in sorted(machine.names - reachable, key=str) if not machine.broken else []:
            self.add(
                (*machine.path, "States", name),
                "unreachable_state",
                f"state {name!r} is never reached from StartAt",
                "make a Next, Default or Catch point at it, or remove it",
            )
        if not machine.terminal and not machine.broken:
            self.add(
                (*machine.path, "States"),
                "no_terminal_state",
                'no state ends the run: none has "End": true and there is no Fail state',
                'set "End": true on the last state',
            )
            return
        ends = machine.terminal | machine.broken
        can_end, todo = set(ends), list(ends)
        sources: dict[str, list[str]] = {}
        for name, targets in machine.edges.items():
            for target in targets:
                sources.setdefault(target, []).append(name)
        while todo:
            for source in sources.get(todo.pop(), []):
                if source not in can_end:
                    can_end.add(source)
                    todo.append(source)
        for name in sorted(reachable - can_end, key=str):
            self.add(
                (*machine.path, "States", name),
                "no_path_to_end",
                f"once in state {name!r} the run can never end (it only loops)",
                "give the loop a way out: a Choice rule or Default leading to an end",
            )

    def target(self, value: Any, path: Path, machine: _Machine, source: str) -> None:
        """Check one transition target (Next, Default, Catch Next) and record the edge."""
        if not isinstance(value, str):
            self.wrong_type(path, value, "a string naming a state")
            return
        if value not in machine.names:
            hint = _close(value, machine.names) or f"states are: {', '.join(sorted(map(str, machine.names)))}"
            self.add(path, "unknown_next", f"{value!r} is not a state of this state machine", hint)
            machine.broken.add(source)
            return
        machine.edges[source].append(value)

    # -- states ------------------------------------------------------------------------------------------

    def state(self, state: Any, path: Path, machine: _Machine) -> None:
        name = str(path[-1])
        if not isinstance(state, dict):
            self.wrong_type(path, state, "an object with a Type")
            machine.terminal.add(name)
            return
        kind = state.get("Type")
        if "Type" not in state:
            self.add(path, "missing_field", "Type is required", f"one of: {', '.join(STATE_TYPES)}")
        elif not isinstance(kind, str) or kind not in STATE_TYPES:
            hint = (
                fields.TYPE_HINTS.get(str(kind))
                or _close(str(kind), STATE_TYPES)
                or f"one of: {', '.join(STATE_TYPES)}"
            )
            self.add((*path, "Type"), "unknown_state_type", f"{kind!r} is not a state type", hint)
        if kind not in STATE_TYPES:
            # Without a known type the fields cannot be judged; count the state as an end so that its
            # neighbours are not reported as well.
            machine.terminal.add(name)
            if isinstance(state.get("Next"), str) and state["Next"] in machine.names:
                machine.edges[name].append(state["Next"])
            return
        spec, what = fields.STATE_FIELDS[kind], _a(kind) + " state"
        for field, value in state.items():  # in document order, so problems come out in reading order
            check = spec.get(field)
            if check is None:
                self.unknown_field(field, path, spec, what)
            elif check != "transition":
                getattr(self, "check_" + check)(value, (*path, field), machine, name)
        for field in fields.REQUIRED[kind]:
            if field not in state:
                self.add(
                    path,
                    "missing_field",
                    f"{what} needs {field}",
                    fields.REQUIRED_HINTS.get(field, ""),
                )
        for group, rule in fields.EXCLUSIVE.get(kind, ()):
            present = [field for field in group if field in state]
            if len(present) > 1:
                self.add(
                    (*path, present[1]),
                    "conflicting_fields",
                    f"{' and '.join(present)} cannot be used together in {what}",
                    f"keep only one of {', '.join(group)}",
                )
            elif rule == "one" and not present:
                self.add(
                    path,
                    "missing_field",
                    f"{what} needs one of {', '.join(group)}",
                    f"add {' or '.join(group)}",
                )
        self.transitions(kind, state, path, machine, name)

    def transitions(self, kind: str, state: dict[str, Any], path: Path, machine: _Machine, name: str) -> None:
        if kind == "Fail":
            machine.terminal.add(name)
            return
        if kind == "Choice":
            return
        has_next, end = "Next" in state, state.get("End")
        if "End" in state and not isinstance(end, bool):
            self.wrong_type((*path, "End"), end, "true")
        if has_next and end is True:
            self.add(
                path,
                "next_and_end",
                "Next and End cannot both be set",
                "keep Next to continue, or End to stop",
            )
        elif not has_next and end is not True:
            self.add(
                path,
                "no_transition",
                f'{_a(kind)} state needs Next or "End": true',
                'add "Next": "<state>" or "End": true',
            )
        if has_next:
            self.target(state["Next"], (*path, "Next"), machine, name)
        if end is True:
            machine.terminal.add(name)

    # -- field checks (named in _fields.STATE_FIELDS) ----------------------------------------------------

    def check_string(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, str):
            self.wrong_type(path, value, "a string")

    def check_boolean(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, bool):
            self.wrong_type(path, value, "true or false")

    def check_any(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        return

    def check_wait_time(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not _is_number(value):
            self.wrong_type(path, value, "a number of seconds")
        elif value <= 0:
            self.add(path, "bad_value", "WaitTime must be more than 0 seconds", "the Globus default is 300")

    def check_seconds(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not _is_number(value):
            self.wrong_type(path, value, "a number of seconds")
        elif not 0 <= value <= fields.MAX_WAIT_SECONDS:
            self.add(
                path,
                "bad_value",
                f"Seconds must be between 0 and {fields.MAX_WAIT_SECONDS} (one year)",
                "a run may last at most a year; wait in a loop for something that takes longer",
            )

    def check_non_negative_int(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.wrong_type(path, value, "a whole number")
        elif value < 0:
            self.add(path, "bad_value", f"{path[-1]} cannot be negative", "use 0 or more")

    def check_timestamp(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, str):
            self.wrong_type(path, value, "an RFC 3339 timestamp string")
        elif parse_timestamp(value) is None:
            self.add(
                path, "bad_timestamp", f"{value!r} is not an RFC 3339 timestamp", "e.g. 2024-05-01T12:00:00Z"
            )

    def check_path(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, str):
            self.wrong_type(path, value, "a JSONPath string such as '$.input.x'")
            return
        error = check_path(value)
        if error:
            self.add(path, "bad_jsonpath", f"{value!r}: {error}", "paths look like $.input.files[0].name")

    def check_result_path(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if value is None:
            return  # null: discard the result, keep the state as it was
        if not isinstance(value, str):
            self.wrong_type(path, value, "a JSONPath string or null")
            return
        error = check_reference_path(value)
        if error:
            code = "bad_jsonpath" if check_path(value) else "bad_result_path"
            self.add(path, code, f"{value!r}: {error}", "a ResultPath looks like $.StepName")

    def check_action_url(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, str):
            self.wrong_type(path, value, "a URL string")
            return
        target = self.registry.resolve(value)
        if target.kind == "unknown":
            self.add(
                path,
                "unknown_action",
                f"{value!r} is not a known action",
                f"use beamlink:<name> for a built-in ({', '.join(sorted(BUILTIN_PROVIDERS))}), a Globus "
                "action URL, or the https:// URL of an Action Provider",
            )
        elif target.kind == "unsupported":
            self.add(
                path,
                "unsupported_action",
                f"{value!r} is a Globus-hosted action with no beamlink built-in",
                "it will be called as an external Action Provider, which needs Globus credentials",
                severity="warning",
            )

    def check_parameters(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, dict):
            self.wrong_type(path, value, "an object")
            return
        self.template(value, path)

    def template(self, value: Any, path: Path) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.template(item, (*path, index))
            return
        if not isinstance(value, dict):
            return
        produced: dict[str, str] = {}
        for key, item in value.items():
            if key == PRIVATE_PARAMETERS_KEY:
                continue
            target = parameter_name(key)
            if target in produced:
                self.add(
                    (*path, key),
                    "duplicate_parameter",
                    f"{key!r} and {produced[target]!r} both set {target!r}",
                    "keep one of them",
                )
            produced[target] = key
            if key.endswith(".$"):
                self.check_path(item, (*path, key), _NO_MACHINE, "")
            elif key.endswith(".="):
                if not isinstance(item, str):
                    self.wrong_type((*path, key), item, "an expression string")
                else:
                    error = check_expression(item)
                    if error:
                        self.add((*path, key), "bad_expression", f"{item!r}: {error}", fields.EXPRESSION_HINT)
            else:
                self.template(item, (*path, key))
        if PRIVATE_PARAMETERS_KEY in value:
            self.private_parameters(value[PRIVATE_PARAMETERS_KEY], (*path, PRIVATE_PARAMETERS_KEY), produced)

    def private_parameters(self, value: Any, path: Path, produced: dict[str, str]) -> None:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.wrong_type(path, value, "a list of parameter names")
            return
        for index, item in enumerate(value):
            if parameter_name(item) not in produced:
                self.add(
                    (*path, index),
                    "bad_private_parameters",
                    f"{item!r} is not a parameter of this object, so nothing would be hidden",
                    _close(parameter_name(item), produced) or "name a key of the same Parameters object",
                )

    def check_catch(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, list):
            self.wrong_type(path, value, "a list of catchers")
            return
        for index, catcher in enumerate(value):
            where = (*path, index)
            if not isinstance(catcher, dict):
                self.wrong_type(where, catcher, "an object with ErrorEquals and Next")
                continue
            self.unknown_fields(catcher, where, fields.CATCHER_FIELDS, "a Catch entry")
            self.error_equals(catcher, where)
            if "Next" not in catcher:
                self.add(
                    where,
                    "missing_field",
                    "a Catch entry needs Next",
                    "name the state that handles the error",
                )
            else:
                self.target(catcher["Next"], (*where, "Next"), machine, name)
            if "ResultPath" in catcher:
                self.check_result_path(catcher["ResultPath"], (*where, "ResultPath"), machine, name)
            if "Comment" in catcher:
                self.check_string(catcher["Comment"], (*where, "Comment"), machine, name)

    def check_retry(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, list):
            self.wrong_type(path, value, "a list of retriers")
            return
        for index, retrier in enumerate(value):
            where = (*path, index)
            if not isinstance(retrier, dict):
                self.wrong_type(where, retrier, "an object with ErrorEquals")
                continue
            self.unknown_fields(retrier, where, fields.RETRIER_FIELDS, "a Retry entry")
            self.error_equals(retrier, where)
            for field, minimum, rule in fields.RETRIER_NUMBERS:
                if field in retrier:
                    number = retrier[field]
                    if not _is_number(number):
                        self.wrong_type((*where, field), number, "a number")
                    elif number < minimum or (number == minimum and rule == "more than"):
                        self.add(
                            (*where, field),
                            "bad_value",
                            f"{field} must be {rule} {minimum}",
                            "see the Retry section of docs/flow-language.md",
                        )
            if "MaxAttempts" in retrier:
                self.check_non_negative_int(retrier["MaxAttempts"], (*where, "MaxAttempts"), machine, name)
            if "Comment" in retrier:
                self.check_string(retrier["Comment"], (*where, "Comment"), machine, name)

    def error_equals(self, obj: dict[str, Any], path: Path) -> None:
        if "ErrorEquals" not in obj:
            self.add(path, "missing_field", "ErrorEquals is required", 'e.g. ["States.All"]')
            return
        value = obj["ErrorEquals"]
        if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
            self.wrong_type((*path, "ErrorEquals"), value, "a non-empty list of error names")

    def check_choices(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, list):
            self.wrong_type(path, value, "a list of rules")
            return
        if not value:
            self.add(path, "bad_value", "Choices is empty", "add at least one rule")
        for index, rule in enumerate(value):
            self.rule(rule, (*path, index), machine, name, top=True)

    def check_default(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        self.target(value, path, machine, name)

    def rule(self, rule: Any, path: Path, machine: _Machine, name: str, *, top: bool) -> None:
        if not isinstance(rule, dict):
            self.wrong_type(path, rule, "a rule object")
            return
        allowed = {"And", "Or", "Not", "Variable", "Comment", *COMPARATORS} | ({"Next"} if top else set())
        self.unknown_fields(rule, path, allowed, "a Choice rule" if top else "a nested Choice rule")
        operators = [key for key in rule if key in COMPARATORS or key in ("And", "Or", "Not")]
        if len(operators) != 1:
            found = ", ".join(operators) or "none"
            self.add(
                path,
                "bad_choice_rule",
                f"a rule needs exactly one of And, Or, Not or a comparison operator (found: {found})",
                "split it into several rules inside an And",
            )
        if top:
            if "Next" not in rule:
                self.add(
                    path, "missing_field", "a top-level Choice rule needs Next", "name the state to go to"
                )
            else:
                self.target(rule["Next"], (*path, "Next"), machine, name)
        for key in operators:
            operand, where = rule[key], (*path, key)
            if key in ("And", "Or"):
                if not isinstance(operand, list) or not operand:
                    self.wrong_type(where, operand, "a non-empty list of rules")
                else:
                    for index, sub in enumerate(operand):
                        self.rule(sub, (*where, index), machine, name, top=False)
            elif key == "Not":
                self.rule(operand, where, machine, name, top=False)
            else:
                self.operand(key, operand, where)
        comparisons = [key for key in operators if key in COMPARATORS]
        if comparisons and "Variable" not in rule:
            self.add(
                path, "missing_field", f"{comparisons[0]} needs a Variable", 'e.g. "Variable": "$.input.x"'
            )
        if "Variable" in rule:
            if operators and not comparisons:
                self.add(
                    (*path, "Variable"),
                    "bad_choice_rule",
                    "Variable is only used with a comparison operator",
                    "put Variable in the rules inside And/Or/Not",
                )
            self.check_path(rule["Variable"], (*path, "Variable"), machine, name)

    def operand(self, key: str, operand: Any, path: Path) -> None:
        kind = COMPARATORS[key]
        if kind == "numeric" and not _is_number(operand):
            self.wrong_type(path, operand, "a number")
        elif kind in ("string", "pattern") and not isinstance(operand, str):
            self.wrong_type(path, operand, "a string")
        elif kind in ("boolean", "flag") and not isinstance(operand, bool):
            self.wrong_type(path, operand, "true or false")
        elif kind == "timestamp":
            self.check_timestamp(operand, path, _NO_MACHINE, "")
        elif kind == "path":
            self.check_path(operand, path, _NO_MACHINE, "")

    def check_branches(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        if not isinstance(value, list) or not value:
            self.wrong_type(path, value, "a non-empty list of state machines")
            return
        for index, branch in enumerate(value):
            self.machine(branch, (*path, index))

    def check_iterator(self, value: Any, path: Path, machine: _Machine, name: str) -> None:
        allowed = (
            (*fields.MACHINE_FIELDS, "ProcessorConfig")
            if path[-1] == "ItemProcessor"
            else fields.MACHINE_FIELDS
        )
        self.machine(value, path, allowed=allowed)

    def processor_config(self, value: Any, path: Path) -> None:
        if not isinstance(value, dict):
            self.wrong_type(path, value, "an object")
            return
        self.unknown_fields(value, path, ("Mode",), "ProcessorConfig")
        if value.get("Mode", "INLINE") != "INLINE":
            self.add((*path, "Mode"), "bad_value", 'only "Mode": "INLINE" is supported', "remove Mode")


_NO_MACHINE = _Machine((), set())


def validate_document(document: Any, registry: ActionRegistry | None = None) -> list[Problem]:
    """Every problem of a parsed definition document, in document order (errors and warnings)."""
    validator = _Validator(registry or DEFAULT_REGISTRY)
    if not isinstance(document, dict):
        validator.wrong_type((), document, "an object with StartAt and States")
    else:
        validator.machine(document, ())
    return validator.problems
