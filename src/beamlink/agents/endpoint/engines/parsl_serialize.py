"""Parsl serializes task arguments and results with pickle first, dill only when pickle refuses.

Parsl packs every argument and result with dill, whose pickler is written in Python: about 180 µs for
the arguments of one beamlink task, most of what the endpoint agent spent per task at 1,000 tasks/s.
Those arguments are plain data (the user's function and arguments are already packed by
:mod:`beamlink.serialize`), which the C pickler writes in a few microseconds. Anything pickle refuses
(a lambda, a local class) falls through to Parsl's own serializers unchanged.

Parsl names a serializer in each message by module and class (``SerializerBase.identifier``), and a
process that meets an unknown name imports it: this is Parsl's documented plug-in point. The agent puts
this serializer first (:func:`install`); workers install it when they import
:mod:`~beamlink.agents.endpoint.engines.htex_worker`, so results come back the same way.
"""

from __future__ import annotations

import pickle
from typing import Any

from parsl.serialize import facade
from parsl.serialize.base import SerializerBase

__all__ = ["PickleFirst", "install"]


class PickleFirst(SerializerBase):
    def serialize(self, data: Any) -> bytes:
        return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)

    def deserialize(self, payload: bytes) -> Any:
        return pickle.loads(payload)


def install() -> None:
    """Make pickle the first data serializer of this process (idempotent)."""
    methods = facade.methods_for_data
    serializer = PickleFirst()
    if next(iter(methods), None) == serializer.identifier:
        return
    others = {key: value for key, value in methods.items() if key != serializer.identifier}
    methods.clear()
    methods[serializer.identifier] = serializer
    methods.update(others)
