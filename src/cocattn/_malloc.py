"""The C allocator setting of cocattn's processes: keep freed memory for reuse. With glibc's mmap
threshold at 1 GiB and heap trimming off, a training step's large blocks (the logits, their
softmax and gradient) come from the heap and are reused by the next step instead of being mapped,
zeroed and unmapped every step (same arithmetic, bit for bit; the process keeps its peak heap).
``COCATTN_MALLOC=default`` leaves the allocator as it is; elsewhere than glibc nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory", "allocator_setting"]

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD = 1 << 30  # blocks above 1 GiB still come from mmap
NEVER_TRIM = (1 << 31) - 1  # mallopt takes an int

_applied: str | None = None


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "gnu_get_libc_version") else None  # glibc only (musl has no mallopt)
    except OSError:
        return None


def keep_freed_memory() -> str:
    """Set the allocator to keep freed memory (see the module docstring), once per process;
    returns the setting in force: ``"keep"``, ``"default"`` (``COCATTN_MALLOC=default``) or
    ``"unavailable"`` (not glibc)."""
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get("COCATTN_MALLOC", "").strip().lower() == "default":
        _applied = "default"
        return _applied
    libc = _libc()
    if libc is None:
        _applied = "unavailable"
        return _applied
    libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
    if not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        # a glibc that refuses a threshold this high (some cap it at 32 MiB): every block from the heap
        libc.mallopt(M_MMAP_MAX, 0)
    _applied = "keep"
    return _applied


def allocator_setting() -> str:
    """The setting in force in this process (``"default"`` when :func:`keep_freed_memory` was
    never called)."""
    return _applied or "default"
