"""The beamlink SDK: talk to a beamlink service from user code.

>>> from beamlink.sdk import Client
>>> Client().whoami().username  # doctest: +SKIP
'alice'

The SDK never imports the service or the agents; the wire models it shares with them live in
``beamlink.protocol`` and its errors in ``beamlink.errors``.
"""

from beamlink.sdk.client import Client
from beamlink.sdk.executor import Executor, TaskFuture

__all__ = ["Client", "Executor", "TaskFuture"]
