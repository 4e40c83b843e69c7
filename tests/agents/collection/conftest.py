"""Fixtures shared by the collection agent's tests."""

from __future__ import annotations

import os

import pytest

from helpers import SendfileLog


@pytest.fixture
def sendfile_sent(monkeypatch: pytest.MonkeyPatch) -> SendfileLog:
    """Every ``os.sendfile`` call of this test: asyncio's zero-copy send looks ``os.sendfile`` up at each
    call, so the data server's use of it shows here."""
    sent = SendfileLog()
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent.append(real(out_fd, in_fd, offset, count))
        return sent[-1]

    monkeypatch.setattr(os, "sendfile", counting)
    return sent
