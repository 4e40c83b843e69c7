"""The :class:`Problem` record that validation returns, and JSON pointer helpers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Problem", "Severity", "pointer"]

Severity = Literal["error", "warning"]


class Problem(BaseModel):
    """One thing wrong with a definition or a run input.

    ``pointer`` is an RFC 6901 JSON pointer into the checked document (``""`` is the whole document),
    ``code`` a stable machine-readable kind (``unknown_next``, ``missing_field``, ...), ``message`` says
    what is wrong and ``hint`` how to fix it. Warnings never make :func:`load_definition` fail.
    """

    model_config = ConfigDict(frozen=True)

    pointer: str = Field(description="JSON pointer to the offending value; '' is the whole document")
    code: str = Field(description="stable kind of problem, e.g. 'unknown_next'")
    message: str = Field(description="what is wrong")
    hint: str = Field(default="", description="how to fix it")
    severity: Severity = Field(default="error", description="'error' blocks loading; 'warning' does not")

    def __str__(self) -> str:
        where = self.pointer or "/"
        text = f"{self.severity}: {where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def pointer(*parts: str | int) -> str:
    """Build a JSON pointer from path parts, escaping ``~`` and ``/`` as RFC 6901 requires."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)
