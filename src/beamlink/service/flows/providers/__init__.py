"""The action providers: the built-ins by name, and the client of external Action Provider APIs."""

from __future__ import annotations

from functools import cache

from beamlink.service.flows.providers.base import Provider

__all__ = ["builtin_providers", "external_provider"]


@cache
def builtin_providers() -> dict[str, Provider]:
    """Every built-in provider by name (one instance each: providers keep no per-action state)."""
    from beamlink.service.flows.providers.basic import (
        ExpressionEvalProvider,
        HelloWorldProvider,
        NotifyProvider,
    )
    from beamlink.service.flows.providers.collection_ops import (
        LsProvider,
        MkdirProvider,
        WaitForFilesProvider,
    )
    from beamlink.service.flows.providers.compute import ComputeProvider
    from beamlink.service.flows.providers.search import SearchDeleteProvider, SearchIngestProvider
    from beamlink.service.flows.providers.transfer import DeleteProvider, TransferProvider

    classes: list[type[Provider]] = [
        HelloWorldProvider,
        ExpressionEvalProvider,
        NotifyProvider,
        SearchIngestProvider,
        SearchDeleteProvider,
        LsProvider,
        MkdirProvider,
        WaitForFilesProvider,
        ComputeProvider,
        TransferProvider,
        DeleteProvider,
    ]
    return {cls.name: cls() for cls in classes}


@cache
def external_provider() -> Provider:
    from beamlink.service.flows.providers.external import ExternalProvider

    return ExternalProvider()
