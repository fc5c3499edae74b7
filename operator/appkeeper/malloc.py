"""glibc's allocator, told to give large blocks back. By default its mmap threshold rises to the
size of the largest block freed (up to 32 MiB): after one 900 KB ConfigMap went through a watch,
every later one came from the heap and stayed there once freed. In a probe, 60 such ConfigMaps
labelled for an App that does not exist grew the operator by 59 MiB although it kept none of them,
and by nothing with the threshold fixed. At 16 KiB the 26 KB values of a 1 MiB spec are mapped too,
and `trim` gives free heap pages back (tests/e2e/test_hostile.py bounds the growth; bench/hostile.py
measures it). A fixed threshold also turns off the dynamic one (mallopt(3))."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("appkeeper")
M_MMAP_THRESHOLD = -3
THRESHOLD = 16 * 1024  # blocks this large are mapped, and unmapped when freed (a 26 KB env value of a 1 MiB spec too)


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018  # both, or it is not glibc
    except (OSError, AttributeError):
        return None
    return libc


def fix_mmap_threshold(threshold: int = THRESHOLD) -> bool:
    """True when glibc took it; False elsewhere (musl, macOS: nothing to do)."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return ok


def trim() -> bool:
    """Gives the free pages inside the heap back (malloc_trim(0) releases them wherever they are,
    not only at the top): a burst of large watch events leaves free holes there that RSS would
    otherwise count for good. True when memory was released."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))
