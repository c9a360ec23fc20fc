"""include/hammer.h from C++: the header compiles as C++11 and C++17 with every warning an error, and its INIT macros
(HAMMER_LIMIT_INIT, HAMMER_*_REQUEST_INIT) give the same values as in C (tests/c/test_abi.c)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = r"""
#include "hammer.h"
#include <cstdio>

int main() {
    hammer_limit lim = HAMMER_LIMIT_INIT(HAMMER_SLIDING_WINDOW, 10, 1000);
    hammer_count_request c = HAMMER_COUNT_REQUEST_INIT;
    hammer_hit_request r = HAMMER_HIT_REQUEST_INIT;
    hammer_check_request k = HAMMER_CHECK_REQUEST_INIT;
    r.lim = &lim;
    std::printf("%d %lld %lld %lld %lld %lld %lld %lld %lld %d\n", lim.algorithm, (long long)lim.limit,
                (long long)lim.period_ms, (long long)(lim.burst + lim.reserved[0] + lim.reserved[1]),
                (long long)c.increment, (long long)r.cost, (long long)r.now_ms, (long long)k.increment,
                (long long)(c.now_ms + c.reserved[1] + r.reserved[1] + k.reserved[1]), r.id == NULL && c.id == NULL);
    return 0;
}
"""


def compiler():
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return shutil.which(name)
    swift = shutil.which("swift")
    cand = os.path.join(os.path.dirname(os.path.realpath(swift)), "clang++") if swift else ""
    if os.access(cand, os.X_OK):
        return cand
    pytest.fail("no C++ compiler (c++, g++ or clang++; the Swift toolchain ships clang++)")


@pytest.mark.parametrize("std", ["c++11", "c++17"])
def test_header_and_init_macros_in_cxx(tmp_path, std):
    src = tmp_path / "init.cpp"
    src.write_text(PROGRAM)
    exe = tmp_path / "init"
    r = subprocess.run([compiler(), f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic",
                        "-I", os.path.join(ROOT, "include"), "-o", str(exe), str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "10", "1000", "0", "1", "1", "-1", "1", "0", "1"]
