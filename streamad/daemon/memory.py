"""Process memory settings of the daemon.

glibc gives each thread that allocates its own malloc arena (up to 8 per core), and memory freed
in one arena is not reused by another. The daemon's threads (poll loop, scoring worker, the Kafka
client's network and sender threads) allocate and free buffers of many sizes, so without a cap its
resident memory climbs for a quarter of an hour before it levels off (+18 % in a 30-minute soak,
docs/PERFORMANCE.md). ``limit_malloc_arenas`` caps the arenas (as ``MALLOC_ARENA_MAX=2`` would) at
start-up, before the daemon starts its threads. An explicit ``MALLOC_ARENA_MAX`` in the environment
wins; on other C libraries it does nothing.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
ARENAS = 2


def limit_malloc_arenas(n: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``n``; True when it was set here."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, int(n)))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to cap
        return False
