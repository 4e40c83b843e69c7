"""Wire shapes every domain uses: the error body and the cursor page."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "Page"]

T = TypeVar("T")


class ErrorBody(BaseModel):
    """What the API answers for every error."""

    code: str = Field(description="Stable error code, e.g. NOT_FOUND.")
    message: str = Field(description="What went wrong and how to fix it.")
    details: dict[str, Any] = Field(default_factory=dict, description="Machine-readable specifics.")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next page (null: no more)."""

    items: list[T]
    next_cursor: str | None = None
