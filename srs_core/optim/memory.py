"""Huge pages for the big CPU tables (the item table and its Adam moments)."""
from __future__ import annotations

import ctypes
import sys

import torch

_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25
_HUGE = 2 << 20  # 2 MiB
_libc = None


def advise_huge_pages(t: torch.Tensor, *, collapse: bool) -> bool:
    """Ask Linux to back ``t``'s memory with 2 MiB transparent huge pages.

    A step reads and writes a few thousand random rows of tables of up to
    gigabytes; with 4 KiB pages nearly every row costs a TLB miss, with huge
    pages far fewer (measured: about 5% of a whole STAMP step at 1e6 items).
    Advise memory before its first touch, so the page faults allocate huge
    pages; ``collapse=True`` also converts pages already present
    (``MADV_COLLAPSE``, Linux 6.1+; about 1 s per 400 MB, once). Best effort:
    returns False (and changes nothing) off Linux, on CUDA, for small tensors
    or when the kernel refuses.
    """
    global _libc
    if t.device.type != "cpu" or not sys.platform.startswith("linux") or not t.is_contiguous():
        return False
    addr, nbytes = t.data_ptr(), t.numel() * t.element_size()
    lo, hi = -(-addr // _HUGE) * _HUGE, (addr + nbytes) // _HUGE * _HUGE
    if hi - lo < 2 * _HUGE:
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        ok = _libc.madvise(lo, hi - lo, _MADV_HUGEPAGE) == 0
        if ok and collapse:
            _libc.madvise(lo, hi - lo, _MADV_COLLAPSE)  # may fail (old kernel): khugepaged will get there
        return ok
    except (OSError, AttributeError):
        return False


def zeros_huge(like: torch.Tensor, huge_pages: bool) -> torch.Tensor:
    out = torch.empty_like(like, memory_format=torch.contiguous_format)
    if huge_pages:
        advise_huge_pages(out, collapse=False)  # before the first touch: faults take huge pages
    return out.zero_()


