"""The bad-input table shared by the app suites: each case must raise one InvalidInput naming field and fix.

A suite lists ``(name, call, field, fix)`` cases and runs them with::

    @bad_input_cases(CASES)
    def test_bad_input_raises_invalid_input(name, call, field, fix):
        assert_invalid_input(name, call, field, fix)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from beamlink.errors import InvalidInput

Case = tuple[str, Callable[[], object], str, str]
"""A case's name, the call that must fail, the field it must name, and a fragment of the fix it must give."""


def bad_input_cases(cases: list[Case]) -> pytest.MarkDecorator:
    """Parametrise a test over ``cases`` as (name, call, field, fix), with the names as ids."""
    return pytest.mark.parametrize(("name", "call", "field", "fix"), cases, ids=[case[0] for case in cases])


def assert_invalid_input(name: str, call: Callable[[], object], field: str, fix: str) -> None:
    """``call()`` raises InvalidInput naming ``field`` in its details and holding ``fix`` in its message."""
    with pytest.raises(InvalidInput) as caught:
        call()
    assert caught.value.details["field"] == field, name
    assert fix in caught.value.message, caught.value.message
    assert caught.value.code == "INVALID_INPUT"
