"""Finds and loads libhammer, in this order:

1. HAMMER_LIBRARY, a path: used alone (a failure is an ImportError, never a silent fallback);
2. the wheel's copy, hammer/_lib/libhammer.so.1 (present in wheels built by `make wheel`);
3. the system: the SONAME libhammer.so.1 as the dynamic loader finds it (ld.so.cache after `make install` and
   ldconfig, LD_LIBRARY_PATH, /usr/lib ...), then ctypes.util.find_library("hammer");
4. a source checkout's build/lib/libhammer.so (built by `make lib`), when this package runs from the repository.
"""
import ctypes
import ctypes.util
import os
from typing import List, Optional, Tuple

SONAME = "libhammer.so.1"  # the Makefile's SONAME (tests/python/test_package.py keeps them equal)
_HERE = os.path.dirname(os.path.abspath(__file__))
WHEEL_COPY = os.path.join(_HERE, "_lib", SONAME)
CHECKOUT_COPY = os.path.normpath(os.path.join(_HERE, os.pardir, os.pardir, os.pardir, "build", "lib", "libhammer.so"))


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p), ("dli_sname", ctypes.c_char_p),
                ("dli_saddr", ctypes.c_void_p)]


def _file_of(lib: ctypes.CDLL, fallback: str) -> str:
    """The file the dynamic loader actually opened for `lib` (dladdr on one of its functions)."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        if dladdr(ctypes.cast(lib.hammer_version, ctypes.c_void_p), ctypes.byref(info)) and info.dli_fname:
            return os.fsdecode(info.dli_fname)
    except (OSError, AttributeError):
        pass
    return fallback


def load() -> Tuple[ctypes.CDLL, str, str]:
    """(the library, the file loaded, where it came from: "HAMMER_LIBRARY", "wheel", "system" or "checkout")."""
    env = os.environ.get("HAMMER_LIBRARY")
    if env:
        try:
            return ctypes.CDLL(env), env, "HAMMER_LIBRARY"
        except OSError as e:
            raise ImportError(f"hammer: cannot load HAMMER_LIBRARY={env}: {e}") from None
    tried: List[str] = []
    candidates: List[Tuple[str, Optional[str]]] = [("wheel", WHEEL_COPY), ("system", SONAME),
                                                   ("system", ctypes.util.find_library("hammer")),
                                                   ("checkout", CHECKOUT_COPY)]
    for where, path in candidates:
        if path is None:
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} ({where}): no such file")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({where}): {e}")
            continue
        return lib, _file_of(lib, path), where
    raise ImportError("hammer: libhammer not found; install a wheel built by `make wheel`, `make install` the library "
                      "(then run ldconfig), run `make lib` in the repository, or set HAMMER_LIBRARY to the path of "
                      "libhammer.so (tried: " + "; ".join(tried) + ")")
