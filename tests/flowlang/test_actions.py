"""The action URL registry: built-ins, Globus URLs, external providers, unknown URLs."""

from __future__ import annotations

import pytest

from beamlink.flowlang import BUILTIN_PROVIDERS, DEFAULT_REGISTRY, GLOBUS_ACTION_URLS, ActionRegistry


@pytest.mark.parametrize(
    ("url", "provider", "dialect"),
    [
        ("https://transfer.actions.globus.org/transfer", "transfer", "globus"),
        ("https://transfer.actions.globus.org/delete", "delete", "globus"),
        ("https://transfer.actions.globus.org/ls", "ls", "globus"),
        ("https://transfer.actions.globus.org/mkdir/", "mkdir", "globus"),
        ("https://actions.globus.org/transfer/transfer", "transfer", "globus-legacy"),
        ("https://actions.automate.globus.org/transfer/transfer", "transfer", "globus-legacy"),
        ("https://actions.globus.org/transfer/delete", "delete", "globus-legacy"),
        ("https://compute.actions.globus.org", "compute", "globus"),
        ("https://compute.actions.globus.org/", "compute", "globus"),
        ("https://compute.actions.globus.org/v3", "compute", "globus-v3"),
        ("https://automate.funcx.org", "compute", "globus-legacy"),
        ("https://api.funcx.org/automate", "compute", "globus-legacy"),
        ("https://actions.globus.org/search/ingest", "search_ingest", "globus"),
        ("https://actions.globus.org/search/delete", "search_delete", "globus"),
        ("https://actions.globus.org/notification/notify", "notify", "globus"),
        ("https://actions.globus.org/expression_eval", "expression_eval", "globus"),
        ("https://actions.globus.org/hello_world", "hello_world", "globus"),
        ("HTTPS://Actions.Globus.org/hello_world", "hello_world", "globus"),
        ("beamlink:wait_for_files", "wait_for_files", "beamlink"),
        ("beamlink:transfer", "transfer", "beamlink"),
    ],
)
def test_builtin_resolution(url: str, provider: str, dialect: str) -> None:
    target = DEFAULT_REGISTRY.resolve(url)
    assert (target.kind, target.provider, target.dialect) == ("builtin", provider, dialect)


def test_every_globus_url_maps_to_a_builtin() -> None:
    assert {provider for provider, _ in GLOBUS_ACTION_URLS.values()} <= BUILTIN_PROVIDERS
    assert all(DEFAULT_REGISTRY.resolve("beamlink:" + name).provider == name for name in BUILTIN_PROVIDERS)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://ap.example.org/actions/thing", "external"),
        ("https://notglobus.org/x", "external"),
        ("https://transfer.actions.globus.org/stat", "unsupported"),
        ("https://actions.globus.org/weboption/wait_for_option", "unsupported"),
        ("https://flows.globus.org/flows/123", "unsupported"),
        ("http://ap.example.org/x", "unknown"),
        ("ftp://x", "unknown"),
        ("beamlink:teleport", "unknown"),
        ("transfer", "unknown"),
        ("https://", "unknown"),
    ],
)
def test_other_kinds(url: str, kind: str) -> None:
    target = DEFAULT_REGISTRY.resolve(url)
    assert target.kind == kind
    assert target.provider is None


def test_extra_urls_and_plain_http() -> None:
    registry = ActionRegistry({"https://beamlink.example.org/actions/transfer/": "transfer"}, allow_http=True)
    assert registry.resolve("https://beamlink.example.org/actions/transfer").provider == "transfer"
    assert registry.resolve("http://localhost:8000/my_ap").kind == "external"
    with pytest.raises(ValueError, match="not a built-in"):
        ActionRegistry({"https://x": "teleport"})
