"""The site file of `beamlink up`: the model, path resolution and errors that name the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamlink.agents.collection.config import parse_config as parse_collection
from beamlink.agents.endpoint.config import ParslEngineConfig, ThreadEngineConfig
from beamlink.agents.endpoint.config import parse_config as parse_endpoint
from beamlink.cli.site import STATE_FILE, ServiceRecord, SiteState, demo_site, load_site, parse_site
from beamlink.errors import ConfigError

EXAMPLE = """\
service: {home: ./site-home, port: 8421}
collections:
  local:  {root: ./data/local, concurrency: 4}
  remote: {root: /srv/remote}
endpoints:
  non_compute: {engine: {type: thread, max_workers: 2}}
  plain:
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_site(text, base=Path("/sites/a"))
    return caught.value.message


def test_example_site_resolves_paths_against_the_site_file(tmp_path: Path) -> None:
    path = tmp_path / "sites" / "site.yaml"
    path.parent.mkdir()
    path.write_text(EXAMPLE)
    loaded = load_site(path)
    assert loaded.home == tmp_path / "sites" / "site-home"
    assert loaded.site.service.port == 8421
    assert loaded.collection_root("local") == tmp_path / "sites" / "data" / "local"
    assert loaded.collection_root("remote") == Path("/srv/remote")
    assert isinstance(loaded.site.endpoints["non_compute"].engine, ThreadEngineConfig)
    assert loaded.site.endpoints["plain"].engine.type == "thread"  # `name:` alone: every default


def test_agent_configs_are_written_from_the_site_and_load_back(tmp_path: Path) -> None:
    (tmp_path / "data" / "local").mkdir(parents=True)
    loaded = parse_site(EXAMPLE, base=tmp_path)
    collection = parse_collection(loaded.collection_config_text("local"))
    assert collection.root_path == tmp_path / "data" / "local"
    assert collection.concurrency == 4
    endpoint = parse_endpoint(loaded.endpoint_config_text("non_compute"))
    assert endpoint.engine == ThreadEngineConfig(max_workers=2)
    assert parse_endpoint(loaded.endpoint_config_text("plain")).engine.type == "thread"


def test_home_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_site("", base=tmp_path).home == tmp_path / "site-home"
    monkeypatch.setenv("BEAMLINK_HOME", str(tmp_path / "mine"))
    # A running service: the agents use the home `beamlink login` wrote the token to.
    assert parse_site("service: {url: 'http://h:1/'}", base=tmp_path).home == tmp_path / "mine"
    assert parse_site("service: {url: 'http://h:1/'}", base=tmp_path).site.service.url == "http://h:1"
    assert parse_site("", base=tmp_path, home=tmp_path / "x").home == tmp_path / "x"


def test_the_demo_site(tmp_path: Path) -> None:
    loaded = demo_site(tmp_path / "demo")
    assert loaded.home == tmp_path / "demo"
    assert sorted(loaded.site.collections) == ["local", "portal", "remote"]
    assert {loaded.collection_root(n) for n in loaded.site.collections} == {
        tmp_path / "demo" / "data" / n for n in ("local", "remote", "portal")
    }
    assert isinstance(loaded.site.endpoints["non_compute"].engine, ThreadEngineConfig)
    compute = parse_endpoint(loaded.endpoint_config_text("compute")).engine
    assert isinstance(compute, ParslEngineConfig)
    assert compute.provider.type == "LocalProvider"
    assert compute.executor_options() == {"max_workers_per_node": 1}


def test_demo_site_home_defaults_under_beamlink_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_HOME", str(tmp_path))
    assert demo_site().home == tmp_path / "demo-site"


def test_unknown_key_names_the_line_and_the_closest_key() -> None:
    message = error_of("service: {port: 1}\ncolections: {}\n")
    assert "unknown key 'colections' at line 2 (top level); did you mean 'collections'?" in message
    message = error_of("service:\n  home: .\n  prot: 9000\n")
    assert "unknown key 'prot' at line 3 in service; did you mean 'port'?" in message
    message = error_of("collections:\n  local:\n    root: /d\n    concurrncy: 2\n")
    assert "unknown key 'concurrncy' at line 4 in collections.local; did you mean 'concurrency'?" in message


def test_collections_take_root_not_root_path() -> None:
    message = error_of("collections:\n  local:\n    root_path: /d\n")
    assert "unknown key 'root_path' at line 3 in collections.local; did you mean 'root'?" in message
    assert "collections.local at line 3: 'root' is required" in error_of(
        "collections:\n  local:\n    concurrency: 2\n"
    )


def test_wrong_type_names_the_line() -> None:
    assert "service.port at line 2: expected a whole number, got 'lots'" in error_of(
        "service:\n  port: lots\n"
    )
    message = error_of("endpoints:\n  a:\n    engine: {type: thread, max_workers: many}\n")
    assert "endpoints.a.engine.max_workers at line 3: expected a whole number, got 'many'" in message
    assert "collections at line 1: expected a mapping" in error_of("collections: [a, b]\n")
    message = error_of("collections:\n  local: {root: /d, listen: nowhere}\n")
    assert "collections.local.listen at line 2: expected host:port" in message


def test_bad_engine_names_the_line_and_the_choices() -> None:
    message = error_of("endpoints:\n  compute:\n    engine:\n      type: gpu\n")
    assert "endpoints.compute.engine.type at line 4: unknown engine type 'gpu'" in message
    assert "thread, process, parsl" in message
    message = error_of("endpoints:\n  compute:\n    engine: {type: parsl, max_worker_per_node: 1}\n")
    assert "unknown option 'max_worker_per_node' at line 3 in endpoints.compute.engine" in message
    assert "did you mean 'max_workers_per_node'" in message
    message = error_of(
        "endpoints:\n  compute:\n    engine:\n      type: parsl\n      provider: {type: Nope}\n"
    )
    assert "endpoints.compute.engine.provider.type at line 5: unknown provider 'Nope'" in message


def test_bad_agent_name() -> None:
    message = error_of("endpoints:\n  ok: {}\n  'a b': {}\n")
    assert "endpoints.a b at line 3: 'a b' cannot name an endpoint: it contains whitespace" in message


def test_url_excludes_the_keys_of_a_service_up_starts() -> None:
    message = error_of("service:\n  url: http://h:8420\n  port: 9000\n")
    assert "service.url at line 2: url uses a service that is already running, so port" in message
    assert "remove url" in message
    assert "service.url at line 1: expected an http:// or https:// URL" in error_of("service: {url: 'h:1'}\n")


def test_not_a_mapping_and_bad_yaml() -> None:
    assert "the file must be a mapping of keys (service:, collections:, endpoints:)" in error_of("- a\n")
    assert "not valid YAML at line 2" in error_of("service:\n\tport: 1\n")


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("service:\n  port: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    assert caught.value.message.startswith(f"{path}: service.port at line 2: must be at least 1")
    with pytest.raises(ConfigError, match="cannot read the site file"):
        load_site(tmp_path / "missing.yaml")


def test_state_file_round_trip(tmp_path: Path) -> None:
    assert SiteState.read(tmp_path) is None
    state = SiteState(
        source="s",
        service=ServiceRecord(url="http://h:1", started=True, pid=5, started_at=1.5),
        endpoints=["e"],
    )
    state.write(tmp_path)
    assert SiteState.read(tmp_path) == state
    (tmp_path / STATE_FILE).write_text("{")
    with pytest.raises(ConfigError, match="is damaged"):
        SiteState.read(tmp_path)
    SiteState.remove(tmp_path)
    SiteState.remove(tmp_path)
    assert SiteState.read(tmp_path) is None
