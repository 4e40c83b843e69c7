"""config.yaml: what loads, and what every mistake says (file, key, line, fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamlink.agents.endpoint.config import (
    EndpointConfig,
    ParslEngineConfig,
    ProcessEngineConfig,
    ThreadEngineConfig,
    build_engine,
    default_config_text,
    load_config,
    parse_config,
)
from beamlink.agents.endpoint.engines import ProcessEngine, ThreadEngine
from beamlink.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message
    assert str(path) in message
    return message


def test_an_empty_file_means_all_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config == EndpointConfig()
    assert isinstance(config.engine, ThreadEngineConfig)
    assert config.engine.max_workers == 4
    assert config.heartbeat_period == 30
    assert config.output_limit == 65536
    assert config.allowed_functions is None
    assert config.idle_shutdown_after is None


def test_a_full_file_loads(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
display_name: Beamline 7
description: reduction
heartbeat_period: 0.5
idle_shutdown_after: 600
output_limit: 100
allowed_functions:
  - 3F2A9C4E-1111-2222-3333-444455556666
environment:
  OMP_NUM_THREADS: 4
  MODE: fast
engine:
  type: process
  max_workers: 3
  max_tasks_per_child: 10
""",
        )
    )
    assert config.display_name == "Beamline 7"
    assert config.heartbeat_period == 0.5
    assert config.allowed_functions == ["3f2a9c4e-1111-2222-3333-444455556666"]
    assert config.environment == {"OMP_NUM_THREADS": "4", "MODE": "fast"}
    assert isinstance(config.engine, ProcessEngineConfig)
    assert (config.engine.max_workers, config.engine.max_tasks_per_child) == (3, 10)


def test_engine_may_be_named_alone(tmp_path: Path) -> None:
    assert isinstance(load_config(write(tmp_path, "engine: process\n")).engine, ProcessEngineConfig)


def test_unknown_key_names_its_line_and_the_key_meant(tmp_path: Path) -> None:
    message = error_of(tmp_path, "display_name: x\n\nengin:\n  type: thread\n")
    assert "unknown key 'engin' at line 3" in message
    assert "did you mean 'engine'?" in message


def test_unknown_nested_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: thread\n  max_worker: 2\n")
    assert "unknown key 'max_worker' at line 3 in engine" in message
    assert "did you mean 'max_workers'?" in message


def test_wrong_type_names_key_line_and_expected_type(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: process\n  max_workers: lots\n")
    assert "engine.max_workers at line 3: expected a whole number, got 'lots'" in message


def test_unknown_engine_type_lists_the_engines(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: dask\n")
    assert "engine.type at line 2: unknown engine type 'dask'" in message
    assert "thread, process, parsl" in message


def test_out_of_range_value(tmp_path: Path) -> None:
    message = error_of(tmp_path, "heartbeat_period: 0\n")
    assert "heartbeat_period at line 1: must be greater than 0" in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_a_document_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert "must be a mapping of keys" in error_of(tmp_path, text)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: thread\n max_workers: 3\n")
    assert "not valid YAML at line 3" in message


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the endpoint config"):
        load_config(tmp_path / "nope.yaml")


def test_allowed_functions_must_be_function_ids(tmp_path: Path) -> None:
    message = error_of(tmp_path, "allowed_functions:\n  - 3f2a9c4e-1111-2222-3333-444455556666\n  - nope\n")
    assert "allowed_functions[1] at line 3: 'nope' is not a function id" in message


def test_environment_values_are_text(tmp_path: Path) -> None:
    message = error_of(tmp_path, "environment:\n  DEBUG: yes\n")
    assert "environment.DEBUG at line 2: expected text, got True: put the value in quotes" in message
    assert "not a variable name" in error_of(tmp_path, "environment:\n  1BAD: x\n")


def test_worker_init_needs_the_parsl_engine(tmp_path: Path) -> None:
    message = error_of(tmp_path, "worker_init: module load x\nengine: {type: process}\n")
    assert "worker_init at line 1: only the parsl engine runs worker_init" in message


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    message = error_of(tmp_path, "heartbeat_period: -1\noutput_limit: many\n")
    assert "heartbeat_period at line 1" in message
    assert "output_limit at line 2" in message


# -- the parsl engine --------------------------------------------------------------------------------


def test_unknown_provider_lists_the_providers(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: parsl\n  provider:\n    type: NoSuchProvider\n")
    assert "engine.provider.type at line 4: unknown provider 'NoSuchProvider'" in message
    assert "LocalProvider" in message
    assert "SlurmProvider" in message


def test_unknown_executor_option_suggests_close_names(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: parsl\n  max_worker_per_node: 2\n")
    assert "unknown option 'max_worker_per_node' at line 3 in engine" in message
    assert "HighThroughputExecutor has no such option; did you mean 'max_workers_per_node'" in message


def test_executor_option_of_the_wrong_type(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: parsl\n  cores_per_worker: half\n")
    assert "engine.cores_per_worker at line 3: expected a number, got 'half'" in message


def test_options_beamlink_sets_are_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: parsl\n  label: mine\n")
    assert "engine.label at line 3: 'label' cannot be set" in message


def test_unknown_provider_option(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, "engine:\n  type: parsl\n  provider:\n    type: SlurmProvider\n    partitions: x\n"
    )
    assert "unknown option 'partitions' at line 5 in engine.provider" in message
    assert "did you mean 'partition'" in message


def test_provider_option_that_yaml_read_as_a_number(tmp_path: Path) -> None:
    text = "engine:\n  type: parsl\n  provider:\n    type: SlurmProvider\n    walltime: 1:00:00\n"
    message = error_of(tmp_path, text)
    assert "engine.provider.walltime at line 5: expected text, got 3600: put the value in quotes" in message


def test_bad_launcher(tmp_path: Path) -> None:
    text = "engine:\n  type: parsl\n  provider:\n    type: LocalProvider\n    launcher:\n"
    text += "      type: SrunLauncherr\n"
    message = error_of(tmp_path, text)
    assert "engine.provider.launcher.type at line 6: unknown launcher 'SrunLauncherr'" in message
    assert "did you mean 'SrunLauncher'" in message
    text = "engine:\n  type: parsl\n  provider:\n    launcher: {type: SrunLauncher, overides: x}\n"
    assert "unknown option 'overides' at line 4" in error_of(tmp_path, text)


def test_bad_address_function(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: parsl\n  address: {type: by_magic}\n")
    assert "engine.address.type at line 3: unknown address function 'by_magic'" in message
    assert "address_by_interface" in message


def test_required_provider_option(tmp_path: Path) -> None:
    message = error_of(tmp_path, "engine:\n  type: parsl\n  provider: {type: KubernetesProvider}\n")
    assert "KubernetesProvider needs 'image'" in message


def test_parsl_options_reach_the_executor(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
worker_init: source /opt/env/bin/activate
environment:
  GREETING: hello world
engine:
  type: parsl
  max_workers_per_node: 3
  cores_per_worker: 0.5
  address: 127.0.0.1
  provider:
    type: LocalProvider
    max_blocks: 2
    worker_init: echo provider
    launcher: {type: SimpleLauncher, debug: false}
""",
        )
    )
    engine = config.engine
    assert isinstance(engine, ParslEngineConfig)
    assert engine.executor_options() == {"max_workers_per_node": 3, "cores_per_worker": 0.5}
    executor = engine.executor(environment=config.environment, worker_init=config.worker_init)
    assert executor.max_workers_per_node == 3
    assert executor.cores_per_worker == 0.5
    assert executor.address == "127.0.0.1"
    assert type(executor.provider).__name__ == "LocalProvider"
    assert executor.provider.max_blocks == 2
    assert type(executor.provider.launcher).__name__ == "SimpleLauncher"
    # Variables first, then the endpoint's worker_init, then the provider's own.
    assert executor.provider.worker_init.splitlines() == [
        "export GREETING='hello world'",
        "source /opt/env/bin/activate",
        "echo provider",
    ]
    assert "-m parsl.executors.high_throughput.process_worker_pool" in executor.launch_cmd


def test_default_provider_is_one_local_block() -> None:
    engine = parse_config("engine: parsl\n").engine
    assert isinstance(engine, ParslEngineConfig)
    provider = engine.executor(environment={}, worker_init=None).provider
    assert type(provider).__name__ == "LocalProvider"
    assert (provider.init_blocks, provider.min_blocks, provider.max_blocks) == (1, 0, 1)


# -- the configure template and building ---------------------------------------------------------------


@pytest.mark.parametrize("engine", ["thread", "process", "parsl"])
def test_default_config_text_loads_back(tmp_path: Path, engine: str) -> None:
    text = default_config_text(engine)
    assert text.startswith("#")
    config = load_config(write(tmp_path, text))
    assert config.engine.type == engine


def test_default_config_text_for_an_unknown_engine() -> None:
    with pytest.raises(ConfigError, match="thread, process, parsl"):
        default_config_text("dask")


def test_build_engine_makes_the_configured_engine(tmp_path: Path) -> None:
    def ignore(*_: object) -> None:
        return None

    thread = build_engine(
        parse_config("engine: {max_workers: 2}\n"), run_dir=tmp_path, on_started=ignore, on_done=ignore
    )
    assert isinstance(thread, ThreadEngine)
    assert thread.max_workers == 2
    process = build_engine(
        parse_config("engine: {type: process, max_workers: 1}\nenvironment: {A: b}\n"),
        run_dir=tmp_path,
        on_started=ignore,
        on_done=ignore,
    )
    assert isinstance(process, ProcessEngine)
    assert process.environment == {"A": "b"}
