"""Batches already checked: who may send which functions to which endpoint, from which environment.

Checking a batch (the endpoint by id or name and its grants, each function and its grants,
``allowed_functions``, the Python/dill match, and that a named task group holds no one else's tasks)
loaded two rows through the ORM: more than half of a one-task submission's transaction. A batch like one
checked before (same caller, endpoint, functions, environment and task group) reuses the answer. The
cache is exact (:mod:`beamlink.service.db.cache`): any commit that writes an endpoint (its connects,
disconnects and heartbeats included), a function, a grant, a user, a group or a membership empties it.
Tasks do not: a task group, once someone's, stays theirs. Only successes are kept; a refused batch is
checked afresh.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from beamlink.service.auth.models import ApiToken, Grant, Group, GroupMember, User
from beamlink.service.compute.models import Endpoint, Function
from beamlink.service.db.cache import ExactCache

__all__ = ["Checked", "SubmitChecks"]


@dataclass(frozen=True, slots=True)
class Checked:
    """What checking a batch found out about its endpoint."""

    endpoint_id: str
    online: bool


class SubmitChecks(ExactCache[Hashable, Checked]):
    models = (Endpoint, Function, Grant, User, Group, GroupMember, ApiToken)
