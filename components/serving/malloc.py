"""Keep freed memory in the process between decode steps instead of handing it back to the OS (glibc only).

A decode step allocates and frees the same few tensors of a few hundred KiB every time (at 20 rows of the
`small` model: the logits, their softmax, the sampling buffers, [20, 8064] floats each). glibc serves blocks of
that size from fresh mmaps or trims them off the top of the heap when they are freed, so every step touches new
pages: about 95 page faults a step, 7% of a 20-row step (3.8 -> 3.5 ms; one row has none and is unchanged;
2026-12-05, the 2-core EPYC, `benchmarks/engine_batching.py`). PyTorch's CPU performance guide swaps in
jemalloc or tcmalloc for the same reason; `mallopt` gets it from the allocator already loaded, with no preload.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20  # glibc's largest: bigger blocks (a large model's weights) still get their own mmap
TRIM_THRESHOLD = 256 << 20  # free memory the heap may keep at its top


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep blocks under 32 MiB on its heap and not trim it below 256 MiB of free space; False
    where the C library is not glibc (macOS, musl), which is left as it is."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc keeps freed memory: %s", done)
    return done
