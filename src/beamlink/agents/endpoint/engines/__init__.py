"""Engines run tasks: in threads, in local worker processes, or through Parsl (imported on demand).

All implement :class:`~beamlink.agents.endpoint.engines.base.Engine`. ``ParslEngine`` lives in
:mod:`beamlink.agents.endpoint.engines.htex`, which imports Parsl; importing this package does not.
"""

from beamlink.agents.endpoint.engines.base import Engine, Job, OnDone, OnStarted
from beamlink.agents.endpoint.engines.process import ProcessEngine
from beamlink.agents.endpoint.engines.thread import ThreadEngine

__all__ = ["Engine", "Job", "OnDone", "OnStarted", "ProcessEngine", "ThreadEngine"]
