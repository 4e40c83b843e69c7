"""``fallocate(2)``, which Python's :mod:`os` lacks.

:func:`os.posix_fallocate` is glibc's: where the filesystem has no ``fallocate`` it writes a byte into
every block instead (thousands of round trips for one chunk on a network filesystem). Here a filesystem
without it answers False and nothing is written.
"""

from __future__ import annotations

import ctypes
import errno
import os

__all__ = ["allocate", "punch_hole"]

_KEEP_SIZE = 0x01  # FALLOC_FL_KEEP_SIZE
_PUNCH_HOLE = 0x02  # FALLOC_FL_PUNCH_HOLE
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOSYS})

_fallocate = ctypes.CDLL(None, use_errno=True).fallocate
_fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_fallocate.restype = ctypes.c_int


def _call(fd: int, mode: int, offset: int, length: int) -> bool:
    while _fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        if code in _UNSUPPORTED:
            return False
        if code != errno.EINTR:
            raise OSError(code, os.strerror(code))
    return True


def allocate(fd: int, offset: int, length: int) -> bool:
    """Give ``length`` bytes from ``offset`` blocks (read as zeros until written; the size is kept).

    False where the filesystem cannot. ENOSPC and the like raise OSError.
    """
    return _call(fd, _KEEP_SIZE, offset, length)


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free the blocks of ``length`` bytes from ``offset`` (they read as zeros); False where unsupported."""
    return _call(fd, _KEEP_SIZE | _PUNCH_HOLE, offset, length)
