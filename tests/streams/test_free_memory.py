"""Freed C memory goes back to the system: RSS follows what is in use, not what was ever allocated."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest

from driftline.streams.free_memory import _malloc_trim, release_free_memory


def rss_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024  # type: ignore[union-attr]


@pytest.mark.skipif(not Path("/proc/self/status").exists() or _malloc_trim() is None, reason="glibc on Linux only")
def test_memory_freed_below_a_chunk_still_in_use_is_returned() -> None:
    """80 MiB of 2 KB blocks (glibc's heap, not Python's small-object pools), one in 64 kept: freeing the rest
    leaves RSS up (the kept blocks pin the heap); release_free_memory gives it back."""
    blocks = [bytes(2000) for _ in range(40_000)]
    kept = blocks[::64]
    del blocks
    gc.collect()
    freed = rss_mib()
    assert release_free_memory() is True
    assert freed - rss_mib() > 40, "the freed blocks' pages are still resident"
    assert len(kept) == 625
