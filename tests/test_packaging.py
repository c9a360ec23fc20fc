"""Packaging: `make install PREFIX=...` gives a library that C programs find through pkg-config and run, with
SONAME libhammer.so.1, no Swift or C++ runtime dependency (only glibc's libraries besides hiredis and OpenSSL), and exactly the hammer_* functions of include/hammer.h exported."""
import filecmp
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "include", "hammer.h")
BUILD_LIB = os.path.join(ROOT, "build", "lib", "libhammer.so")
TIMEOUT = 600  # `make install` may have to build the library first
GLIBC = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "ld-linux-x86-64.so.2"}


def header_version():
    m = re.search(r'^#define HAMMER_VERSION_STRING "([^"]+)"', open(HEADER).read(), re.M)
    assert m, "HAMMER_VERSION_STRING not found in include/hammer.h"
    return m.group(1)


def header_functions():
    """The hammer_* functions declared in include/hammer.h, each of which must carry HAMMER_API."""
    text = open(HEADER).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # comments
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)  # preprocessor lines (macros)
    declared = set(re.findall(r"\b(hammer_\w+)\s*\(", text))
    exported = set(re.findall(r"\bHAMMER_API\b[^;{}]*?\b(hammer_\w+)\s*\(", text))
    assert declared, "no hammer_* function found in include/hammer.h"
    assert declared == exported, f"declared without HAMMER_API: {sorted(declared - exported)}"
    return declared


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install -y {'pkg-config' if name == 'pkg-config' else 'binutils'})")
    return path


def run(cmd, **kw):
    kw.setdefault("timeout", 120)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def make_install(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "PREFIX", "MAKEFLAGS", "MFLAGS")}
    return run(["make", "--no-print-directory", "-C", ROOT, "install", *args], env=env, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    p = str(tmp_path_factory.mktemp("prefix"))
    make_install(f"PREFIX={p}")
    return p


@pytest.fixture(scope="module")
def installed_lib(prefix):
    return os.path.join(prefix, "lib", f"libhammer.so.{header_version()}")


def pkg_config(prefix, *args):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    return run([tool("pkg-config"), *args, "hammer"], env=env).split()


def test_install_layout(prefix, installed_lib):
    lib = os.path.join(prefix, "lib")
    assert os.path.isfile(installed_lib) and not os.path.islink(installed_lib)
    assert os.readlink(os.path.join(lib, "libhammer.so.1")) == os.path.basename(installed_lib)
    assert os.readlink(os.path.join(lib, "libhammer.so")) == "libhammer.so.1"
    assert filecmp.cmp(os.path.join(prefix, "include", "hammer.h"), HEADER, shallow=False)
    assert os.path.isfile(os.path.join(lib, "pkgconfig", "hammer.pc"))


def test_pkg_config_file(prefix):
    assert pkg_config(prefix, "--modversion") == [header_version()]
    assert pkg_config(prefix, "--variable=prefix") == [prefix]
    assert pkg_config(prefix, "--variable=libdir") == [os.path.join(prefix, "lib")]
    assert f"-I{os.path.join(prefix, 'include')}" in pkg_config(prefix, "--cflags")
    libs = pkg_config(prefix, "--libs")
    assert f"-L{os.path.join(prefix, 'lib')}" in libs and "-lhammer" in libs
    # hiredis is an implementation detail: needed for static linking only.
    assert "hiredis" in pkg_config(prefix, "--print-requires-private")
    assert "hiredis" not in pkg_config(prefix, "--print-requires")
    assert "-lhiredis" not in libs
    assert "-lhiredis" in pkg_config(prefix, "--libs", "--static")


def test_example_builds_with_pkg_config_and_runs(prefix, tmp_path, redis_server):
    exe = str(tmp_path / "example")
    flags = pkg_config(prefix, "--cflags", "--libs")
    run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11", "-o", exe,
         os.path.join(ROOT, "bindings", "c", "example.c"), *flags, f"-Wl,-rpath,{os.path.join(prefix, 'lib')}"])
    # It loads the installed library, not the one in build/.
    ldd = run([tool("ldd"), exe])
    m = re.search(r"libhammer\.so\.1 => (\S+)", ldd)
    assert m and m.group(1) == os.path.join(prefix, "lib", "libhammer.so.1"), ldd
    env = {k: v for k, v in os.environ.items() if k not in ("HAMMER_URL", "LD_LIBRARY_PATH")}
    out = run([exe, redis_server.url()], env=env)
    assert re.search(r"request\s+\d+: allowed", out) and re.search(r"request\s+\d+: denied", out), out


def test_installed_header_compiles_as_cxx(prefix, tmp_path):
    """The header's extern "C" guard: a C++ caller links against the C symbols."""
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "v.cc"
    src.write_text('#include <hammer.h>\n#include <cstring>\n'
                   'int main() { return std::strcmp(hammer_version(), HAMMER_VERSION_STRING) != 0; }\n')
    exe = str(tmp_path / "v")
    run(["c++", "-Wall", "-Wextra", "-Werror", "-o", exe, str(src), *pkg_config(prefix, "--cflags", "--libs"),
         f"-Wl,-rpath,{os.path.join(prefix, 'lib')}"])
    run([exe])


def test_cxx_program_with_its_own_libstdcxx(prefix, tmp_path, redis_server):
    """A C++ program (the system's libstdc++.so.6, exceptions, std::thread) and the library's private, static copy of
    libstdc++ and libgcc's unwinder in one process: each keeps to its own, exceptions unwind through the program."""
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "x.cc"
    src.write_text(r"""
        #include <hammer.h>
        #include <cstdio>
        #include <stdexcept>
        #include <string>
        #include <thread>
        static long long hits(const std::string &url) {
            hammer_t *h = nullptr;
            if (hammer_open(url.c_str(), &h) != HAMMER_OK) throw std::runtime_error(hammer_last_error());
            int64_t count = 0;
            for (int i = 0; i < 3; i++)
                if (hammer_count_hit(h, "cxx:own", 1, 1000, 1, &count) != HAMMER_OK) throw std::runtime_error("hit");
            hammer_delete_buckets(h, "cxx:own", nullptr);
            hammer_close(h);
            throw count;
        }
        int main(int argc, char **argv) {
            if (argc != 2) return 2;
            long long count = -1;
            std::thread t([&] { try { hits(argv[1]); } catch (int64_t c) { count = c; } });
            t.join();
            try { hits("redis://127.0.0.1:1/?nonsense=1"); }
            catch (const std::runtime_error &e) { std::printf("%lld %s\n", count, e.what()); return 0; }
            return 1;
        }
    """)
    exe = str(tmp_path / "x")
    run(["c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-o", exe, str(src), "-pthread",
         *pkg_config(prefix, "--cflags", "--libs"), f"-Wl,-rpath,{os.path.join(prefix, 'lib')}"])
    assert "libstdc++.so.6" in run([tool("ldd"), exe])
    out = run([exe, redis_server.url(expiry_ms=60000)]).split(" ", 1)
    assert out[0] == "3" and "nonsense" in out[1], out


@pytest.mark.parametrize("which", ["build", "installed"])
def test_soname(which, installed_lib):
    lib = BUILD_LIB if which == "build" else installed_lib
    dyn = run([tool("readelf"), "-d", lib])
    assert re.search(r"\(SONAME\)\s+Library soname: \[libhammer\.so\.1\]", dyn), dyn


@pytest.mark.parametrize("which", ["build", "installed"])
def test_no_swift_runtime_dependency(which, installed_lib):
    lib = BUILD_LIB if which == "build" else installed_lib
    ldd = run([tool("ldd"), lib])
    assert "libswift" not in ldd and "Foundation" not in ldd, ldd
    assert "not found" not in ldd, ldd
    assert re.search(r"libhiredis\.so", ldd), ldd
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run([tool("readelf"), "-d", lib]))
    assert needed and not [n for n in needed if "swift" in n.lower()], needed
    # The C++ runtime and unwinder the Swift runtime uses are linked in too (Makefile: STATIC_CXX): besides hiredis
    # and OpenSSL, only glibc's own libraries.
    assert set(needed) - {"libhiredis.so.0.14", "libssl.so.3", "libcrypto.so.3"} <= GLIBC, needed


@pytest.mark.parametrize("which", ["build", "installed"])
def test_exports_exactly_the_header_functions(which, installed_lib):
    lib = BUILD_LIB if which == "build" else installed_lib
    out = run([tool("nm"), "-D", "--defined-only", lib])
    symbols = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert symbols, out
    assert {s for s in symbols if not s.startswith("hammer_")} == set(), out
    assert symbols == header_functions()
    # Functions, in the text section.
    for line in out.splitlines():
        assert line.split()[1] == "T", line


def test_installed_library_is_stripped(installed_lib):
    sections = run([tool("readelf"), "-S", "-W", installed_lib])
    assert ".debug_info" not in sections
    assert os.path.getsize(installed_lib) < os.path.getsize(os.path.realpath(BUILD_LIB))


def test_destdir_staging_and_uninstall(tmp_path):
    stage = str(tmp_path / "stage")
    make_install(f"DESTDIR={stage}", "PREFIX=/opt/hammer-test")
    root = os.path.join(stage, "opt", "hammer-test")
    pc = open(os.path.join(root, "lib", "pkgconfig", "hammer.pc")).read()
    assert re.search(r"^prefix=/opt/hammer-test$", pc, re.M), pc  # the final prefix, not the staging dir
    assert stage not in pc
    assert os.path.isfile(os.path.join(root, "include", "hammer.h"))
    assert os.path.islink(os.path.join(root, "lib", "libhammer.so.1"))

    env = {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "PREFIX", "MAKEFLAGS", "MFLAGS")}
    run(["make", "--no-print-directory", "-C", ROOT, "uninstall", f"DESTDIR={stage}", "PREFIX=/opt/hammer-test"],
        env=env)
    left = [os.path.join(d, f) for d, _, files in os.walk(stage) for f in files]
    assert left == [], left
