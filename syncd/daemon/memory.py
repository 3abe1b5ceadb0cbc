"""Giving memory back between runs (glibc's allocator; elsewhere these do nothing).

A run's records, plans and pages are freed when it ends, but glibc keeps the freed heap for later
and, with a heap per thread that allocated (the store's thread, the executor's, the loop), keeps
several: an idle daemon would stay at the size of its largest run. :func:`limit_arenas` caps the
heaps at two (before the daemon starts its threads); :func:`trim` hands free pages back to the
system (``malloc_trim``), which the daemon calls in a worker thread once a run is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

#: mallopt's parameter for the number of arenas (malloc.h)
M_ARENA_MAX = -8
ARENAS = 2


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc (musl, macOS)
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Whether the allocator now keeps at most ``arenas`` heaps."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Give free heap pages back to the system; whether any were (blocks: call it off the loop)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)
