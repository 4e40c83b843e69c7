from __future__ import annotations

import inspect

import pytest

from beamlink import errors
from beamlink.errors import BeamlinkError, InvalidInput, NotFound, TokenExpired, error_from_payload


def all_error_classes() -> list[type[BeamlinkError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, BeamlinkError)]


def test_every_error_has_a_unique_stable_code_and_an_http_status() -> None:
    classes = all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert cls.code.isupper()
        assert 400 <= cls.status < 600


@pytest.mark.parametrize("cls", all_error_classes())
def test_the_sdk_rebuilds_the_same_class_from_an_api_body(cls: type[BeamlinkError]) -> None:
    original = cls("it went wrong", details={"field": "name"})
    rebuilt = error_from_payload(cls.status, original.to_dict())
    assert type(rebuilt) is cls
    assert rebuilt.message == "it went wrong"
    assert rebuilt.details == {"field": "name"}


def test_an_unknown_code_falls_back_to_the_class_for_its_status() -> None:
    rebuilt = error_from_payload(404, {"code": "SOMETHING_NEW", "message": "gone"})
    assert isinstance(rebuilt, NotFound)
    assert rebuilt.message == "gone"


def test_a_body_that_is_not_ours_still_raises_something_catchable() -> None:
    rebuilt = error_from_payload(422, "<html>bad gateway</html>")
    assert isinstance(rebuilt, InvalidInput)
    assert "422" in rebuilt.message


def test_subclasses_defined_elsewhere_register_their_code() -> None:
    class PathOutsideCollection(InvalidInput):
        code = "PATH_OUTSIDE_COLLECTION_TEST"

    rebuilt = error_from_payload(422, {"code": "PATH_OUTSIDE_COLLECTION_TEST", "message": "no"})
    assert type(rebuilt) is PathOutsideCollection


def test_token_expired_is_an_authentication_failure() -> None:
    assert issubclass(TokenExpired, errors.AuthenticationFailed)
    assert TokenExpired.status == 401
