"""Per-task capture of what Python code prints, safe when many tasks share one process.

``sys.stdout`` and ``sys.stderr`` are replaced once by routers. A router sends a write to the buffer of the
task running in the current context (a :class:`contextvars.ContextVar`, so each thread of a thread engine
sees its own task) and, outside any task, to the stream it replaced. Only Python-level writes are seen:
output of C code or of subprocesses writing to file descriptor 1/2 directly is not captured, and neither
is output of threads a function starts itself (they begin with an empty context).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO, cast

__all__ = ["Captured", "TailBuffer", "capture_output"]


class TailBuffer:
    """Keeps the last ``limit`` characters written and counts what was dropped before them."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._chunks: deque[str] = deque()
        self._size = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            if len(text) >= self.limit:
                self.dropped += self._size + len(text) - self.limit
                self._chunks.clear()
                self._size = 0
                text = text[len(text) - self.limit :] if self.limit else ""
                if not text:
                    return
            self._chunks.append(text)
            self._size += len(text)
            while self._size > self.limit:
                excess = self._size - self.limit
                first = self._chunks[0]
                if len(first) <= excess:
                    self._chunks.popleft()
                    self._size -= len(first)
                    self.dropped += len(first)
                else:
                    self._chunks[0] = first[excess:]
                    self._size -= excess
                    self.dropped += excess

    def text(self) -> str:
        """The kept tail, preceded by a one-line marker when earlier output was dropped."""
        with self._lock:
            kept = "".join(self._chunks)
            if self.dropped:
                marker = f"[beamlink: {self.dropped} earlier characters dropped, the last {self.limit} kept]"
                return f"{marker}\n{kept}"
            return kept


class Captured:
    """What one task printed."""

    def __init__(self, limit: int) -> None:
        self.stdout = TailBuffer(limit)
        self.stderr = TailBuffer(limit)


_current: ContextVar[Captured | None] = ContextVar("beamlink_captured_output", default=None)
_install_lock = threading.Lock()


class _Router:
    """Stands in for sys.stdout or sys.stderr; everything but writing is the replaced stream's."""

    def __init__(self, original: TextIO, which: str) -> None:
        self._original = original
        self._which = which

    def _target(self) -> TailBuffer | None:
        captured = _current.get()
        if captured is None:
            return None
        return captured.stdout if self._which == "stdout" else captured.stderr

    def write(self, text: str) -> int:
        target = self._target()
        if target is None:
            return self._original.write(text)
        target.write(str(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._target() is None:
            self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def _install() -> None:
    # Installed lazily and again whenever someone (a test harness, a notebook) swapped the stream since.
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = cast(TextIO, _Router(sys.stdout, "stdout"))
        if not isinstance(sys.stderr, _Router):
            sys.stderr = cast(TextIO, _Router(sys.stderr, "stderr"))


@contextlib.contextmanager
def capture_output(limit: int) -> Iterator[Captured]:
    """Route this context's writes to sys.stdout/sys.stderr into bounded buffers while the block runs."""
    _install()
    captured = Captured(limit)
    token = _current.set(captured)
    try:
        yield captured
    finally:
        _current.reset(token)
