"""Keep freed tensor memory in the process (glibc malloc), so that each step reuses it instead of faulting in fresh
pages from the kernel.

glibc hands blocks above a size threshold (128 KiB at first, adapting upward) to mmap and gives them back on free,
and trims the heap top when it grows past 128 KiB free. A recommender step allocates and frees the same few-MiB
activations every batch, so with the defaults every one of them is faulted in anew: about 600 page faults per SASRec
step on ML-100K, and an evaluation spending a third of its time there. This is the in-process form of what PyTorch's
CPU performance guides do with jemalloc or tcmalloc; memory the process has used once stays reserved for it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit machines: blocks below it come from the heap
TRIM_THRESHOLD = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
