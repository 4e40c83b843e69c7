"""The app framework without a service: tools → flow definition, input checks, the registry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from beamlink.apps.app import App, MissingInput, function_checksum
from beamlink.apps.registry import app_entries, load_app
from beamlink.apps.tools import Compute, Expr, Expression, Input, MapCompute, Publish, State, Transfer
from beamlink.errors import InvalidInput, NotFound
from beamlink.flowlang.expressions import evaluate_expression
from beamlink.flowlang.inputs import validate_input, validate_input_schema
from beamlink.flowlang.parse import validate


def analyse(path: str, output_dir: str, threshold: float = 0.5, *, bins: int = 8) -> dict[str, Any]:
    return {"path": path, "threshold": threshold, "bins": bins, "output_dir": output_dir}


def summarise(result: dict[str, Any], title: str) -> dict[str, Any]:
    return {"title": title, **result}


def small_app() -> App:
    paths = Expression(name="Paths", parameters={"work": Expr("input.root + '/' + pathsplit(input.raw)[1]")})
    move = Transfer(
        name="Move",
        source=Input("local_collection"),
        destination=Input("remote_collection"),
        source_path=Input("raw"),
        destination_path="$.Paths.work",
        defaults_={"local_collection": "local", "remote_collection": "remote"},
    )
    run = Compute(name="Analyse", function=analyse, inputs={"path": "$.Paths.work"})
    tell = Compute(
        name="Summarise", function=summarise, endpoint="non_compute", inputs={"result": run.output}
    )
    publish = Publish(name="Publish", index=Input("index"), subject=Input("raw"), content=tell.output)
    return App("small", [paths, move, run, tell, publish], title="Small", input_help={"raw": "the raw file"})


def test_the_generated_flow_is_valid_chains_the_tools_and_reads_only_each_functions_parameters() -> None:
    app = small_app()
    definition = app.flow_definition({"tests.apps.test_app_framework:analyse": "f-1"})
    assert validate(definition) == []
    assert definition["StartAt"] == "Paths"
    states = definition["States"]
    assert [states[n].get("Next") for n in ("Paths", "Move", "Analyse", "Summarise")] == [
        "Move",
        "Analyse",
        "Summarise",
        "Publish",
    ]
    assert states["Publish"]["End"] is True
    analyse_state = states["Analyse"]
    assert analyse_state["ActionUrl"] == "beamlink:compute"
    assert analyse_state["Parameters"] == {
        "endpoint.$": "$.input.compute_endpoint",
        "function": "f-1",
        "kwargs": {
            "path.$": "$.Paths.work",
            "output_dir.$": "$.input.output_dir",
            "threshold.$": "$.input.threshold",
            "bins.$": "$.input.bins",
        },
    }
    # A function not deployed yet shows by name, so the flow can be read before anything exists.
    assert states["Summarise"]["Parameters"]["function"] == "<tests.apps.test_app_framework:summarise>"
    assert states["Summarise"]["Parameters"]["kwargs"]["result.$"] == "$.Analyse.details.results[0].output"
    assert states["Move"]["Parameters"]["items"] == [
        {"source_path.$": "$.input.raw", "destination_path.$": "$.Paths.work", "recursive": False}
    ]
    assert states["Publish"]["Parameters"]["content.$"] == "$.Summarise.details.results[0].output"
    assert states["Paths"] == {
        "Type": "ExpressionEval",
        "Parameters": {"work.=": "input.root + '/' + pathsplit(input.raw)[1]"},
        "ResultPath": "$.Paths",
        "Next": "Move",
    }


def test_required_input_and_defaults_come_from_the_tools_and_the_function_signatures() -> None:
    app = small_app()
    assert app.required_input() == {
        "root": ["Paths"],
        "raw": ["Paths", "Move", "Publish"],
        "output_dir": ["Analyse"],
        "title": ["Summarise"],
        "index": ["Publish"],
    }
    assert app.input_defaults() == {
        "local_collection": "local",
        "remote_collection": "remote",
        "compute_endpoint": "compute",
        "threshold": 0.5,
        "bins": 8,
        "non_compute_endpoint": "non_compute",
        "visible_to": ["public"],
    }
    schema = app.input_schema()
    assert validate_input_schema(schema) == []
    assert validate_input(schema, {"input": {"raw": "x"}})  # the service refuses what lacks keys
    assert schema["properties"]["input"]["properties"]["raw"] == {"description": "the raw file"}
    assert schema["properties"]["input"]["properties"]["threshold"] == {"default": 0.5}


def test_a_payload_missing_keys_names_every_missing_key_and_the_tools_that_need_it() -> None:
    app = small_app()
    with pytest.raises(MissingInput) as caught:
        app.prepare_input({"raw": "incoming/a.h5", "title": None})
    message = caught.value.message
    for key, tools in {
        "root": "Paths",
        "output_dir": "Analyse",
        "title": "Summarise",
        "index": "Publish",
    }.items():
        assert f"{key} (needed by {tools}" in message
    assert "raw" not in caught.value.details["missing"]
    assert set(caught.value.details["missing"]) == {"root", "output_dir", "title", "index"}
    assert "--set KEY=VALUE" in message


def test_a_complete_payload_gets_the_defaults_and_given_values_win() -> None:
    app = small_app()
    given = {"raw": "a.h5", "root": "/r", "output_dir": "/o", "title": "T", "index": "i", "threshold": 0.9}
    body = app.prepare_input({"input": given})
    assert body["input"]["threshold"] == 0.9
    assert body["input"]["bins"] == 8
    assert body["input"]["compute_endpoint"] == "compute"
    assert app.prepare_input(given) == body  # a bare payload is wrapped
    with pytest.raises(InvalidInput, match="beside 'input'"):
        app.prepare_input({"input": given, "stray": 1})


def test_expressions_the_xpcs_app_uses_evaluate_as_the_run_engine_does() -> None:
    state = {"input": {"measurement": "incoming/run7/A001.h5", "remote_prefix": "xpcs"}}
    assert evaluate_expression("pathsplit(input.measurement)[1].rsplit('.', 1)[0]", state, {}) == "A001"


def test_bad_tools_are_refused_with_the_fix() -> None:
    with pytest.raises(InvalidInput, match="has no parameter"):
        Compute(name="X", function=analyse, inputs={"nope": 1})
    with pytest.raises(InvalidInput, match="not a state name"):
        Compute(name="bad name", function=analyse)
    with pytest.raises(InvalidInput, match="two tools named"):
        App("dup", [Compute(name="A", function=analyse), Compute(name="A", function=summarise)])
    with pytest.raises(InvalidInput, match="has no tools"):
        App("empty", [])
    with pytest.raises(InvalidInput, match=r"facets\[0\] is not a facet"):
        Publish(name="P", index="i", subject="s", content={}, facets=[{"type": "pie"}])


def test_a_hand_written_state_is_chained_and_declares_what_it_reads() -> None:
    wait = State(name="Pause", definition={"Type": "Wait", "Seconds": 1, "Next": "ignored"}, requires=["n"])
    app = App("w", [wait, Compute(name="Run", function=summarise)])
    assert app.flow_definition()["States"]["Pause"] == {"Type": "Wait", "Seconds": 1, "Next": "Run"}
    assert app.required_input() == {"n": ["Pause"], "result": ["Run"], "title": ["Run"]}


def test_a_function_checksum_follows_its_code() -> None:
    namespace: dict[str, Any] = {}
    exec("def f(x):\n    return x + 1\n", namespace)
    first = function_checksum(namespace["f"])
    exec("def f(x):\n    return x + 1\n", namespace)
    assert function_checksum(namespace["f"]) == first
    exec("def f(x):\n    return x + 2\n", namespace)
    assert function_checksum(namespace["f"]) != first


def test_the_xpcs_app_is_installed_through_its_entry_point_and_its_flow_is_valid() -> None:
    entries = app_entries()
    assert entries["xpcs"].target == "beamlink.apps.xpcs.app:app"
    assert entries["xpcs"].package == "beamlink"
    xpcs = load_app("xpcs")
    assert [t.name for t in xpcs.tools] == [
        "Names",
        "Paths",
        "TransferRaw",
        "Correlate",
        "Plot",
        "GatherMetadata",
        "TransferResults",
        "Publish",
    ]
    assert list(xpcs.required_input()) == ["measurement", "remote_root"]
    definition = xpcs.flow_definition()
    assert validate(definition) == []
    assert definition["States"]["Correlate"]["Parameters"]["endpoint.$"] == "$.input.compute_endpoint"
    assert definition["States"]["Plot"]["Parameters"]["endpoint.$"] == "$.input.non_compute_endpoint"
    json.dumps(definition)


def test_an_unknown_app_names_the_installed_ones() -> None:
    with pytest.raises(NotFound, match=r"no app named 'nope' is installed \(installed: .*xpcs"):
        load_app("nope")


def count(block: dict[str, Any], scale: int = 1) -> int:
    return len(block["rows"]) * scale


def test_a_map_compute_tool_fans_a_function_out_over_a_list_and_keeps_its_return_values() -> None:
    split = Compute(name="Split", function=summarise)
    fan = MapCompute(
        name="Count",
        items=f"{split.output}.blocks",
        item=Compute(name="CountBlock", function=count, inputs={"block": "$.block"}),
        item_key="block",
        carry=["Paths"],
        max_concurrency=4,
    )
    app = App("fan", [Expression(name="Paths", parameters={"x": Expr("input.q")}), split, fan])
    definition = app.flow_definition({"tests.apps.test_app_framework:count": "f-count"})
    assert validate(definition) == []
    state = definition["States"]["Count"]
    assert state["Type"] == "Map"
    assert state["ItemsPath"] == "$.Split.details.results[0].output.blocks"
    assert state["ItemSelector"] == {
        "block.$": "$$.Map.Item.Value",
        "input.$": "$.input",
        "Paths.$": "$.Paths",
    }
    inner = state["Iterator"]["States"]
    assert inner["CountBlock"]["Parameters"]["function"] == "f-count"
    assert inner["CountBlockOut"] == {
        "Type": "Pass",
        "InputPath": "$.CountBlock.details.results[0].output",
        "ResultPath": "$",
        "End": True,
    }
    assert "tests.apps.test_app_framework:count" in app.functions()
    assert app.input_defaults()["scale"] == 1
