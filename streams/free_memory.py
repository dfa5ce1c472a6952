"""Give the C allocator's free pages back to the system now and then (glibc's ``malloc_trim``).

Once a worker's bounded stores are full it frees about as much as it allocates, but glibc keeps freed chunks in its
arenas, and a chunk below one still in use is never returned: the worker's RSS then creeps up while what is in use
stays flat (``driftline bench state``'s long run). ``malloc_trim(0)`` hands every free page of every arena back
(``madvise``), so RSS follows what is in use. It takes a few milliseconds and releases the GIL (ctypes), so the
worker runs it in a thread. On a C library without it (musl, macOS) nothing is done.

>>> release_free_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Any | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; True when any was returned (False also where the C
    library has no ``malloc_trim``)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
