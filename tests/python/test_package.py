"""The pip package: `make wheel` gives a manylinux wheel carrying libhammer.so, libhiredis and OpenSSL (auditwheel
repair) that works in a fresh venv with no environment variable, its native library resolving nothing outside the
wheel but glibc (ldd, and the libraries the process maps); `make sdist` gives a source package
that holds what `make lib` needs and builds into a working wheel; `pip install ./bindings/python` works against an
installed library (`make install`); the loader's order (HAMMER_LIBRARY, the wheel's copy, the system, a checkout)
holds; the package's version is the library's; its type hints are complete (mypy --strict) and exported (py.typed)."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

import hammer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "bindings", "python", "hammer")
HEADER = os.path.join(ROOT, "include", "hammer.h")
MODULES = {"__init__.py", "__main__.py", "_api.py", "_http.py", "_loader.py", "_native.py", "_parse.py", "_version.py",
           "aio.py", "asgi.py", "cli.py", "errors.py", "keys.py", "limiter.py", "wsgi.py", "py.typed",
           "integrations/__init__.py", "integrations/_batch.py", "integrations/_core.py", "integrations/flask.py",
           "integrations/starlette.py"}
# What the wheel leaves to the system: glibc's own libraries only. manylinux's base would also allow libstdc++ and
# libgcc_s, but the Swift runtime's C++ runtime and unwinder are linked into libhammer (Makefile: STATIC_CXX).
GLIBC = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
         "ld-linux-x86-64.so.2"}
BUNDLED = ("libhiredis", "libssl", "libcrypto")


def clean_env(**changes):
    """The environment without anything that would point Python at the repository or a library."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HAMMER_LIBRARY", "PYTHONPATH", "LD_LIBRARY_PATH", "MAKEFLAGS", "MFLAGS", "DESTDIR", "PREFIX")}
    env.update(changes)
    return env


def run(cmd, timeout=300, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


SONAME = re.search(r"^SONAME\s*:=\s*(\S+)", open(os.path.join(ROOT, "Makefile")).read(), re.M).group(1)


def header_version():
    return re.search(r'^#define HAMMER_VERSION_STRING "([^"]+)"', open(HEADER).read(), re.M).group(1)


def test_version_is_the_librarys():
    assert hammer.__version__ == header_version() == hammer.version()
    major, minor, patch = map(int, hammer.__version__.split("."))
    assert hammer.version_number() == major * 10000 + minor * 100 + patch
    assert hammer._loader.SONAME == SONAME == f"libhammer.so.{major}", "the loader asks for the Makefile's SONAME"


def test_exceptions_are_the_builtin_ones():
    assert issubclass(hammer.InvalidError, ValueError) and issubclass(hammer.InvalidError, hammer.HammerError)
    assert issubclass(hammer.HammerTimeout, TimeoutError) and issubclass(hammer.HammerTimeout, hammer.HammerError)
    assert issubclass(hammer.ConnectError, ConnectionError) and issubclass(hammer.ConnectError, hammer.HammerError)
    e = hammer.ConnectError("refused")
    assert str(e) == "refused" and e.status == hammer.ERR_CONNECT and e.errno is None
    with pytest.raises(ValueError):
        hammer.Limit.gcra(1.5, 1000)


def test_package_is_fully_typed():
    mypy = pytest.importorskip("mypy")  # make deps installs it
    assert mypy
    out = run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "hammer"],
              cwd=os.path.dirname(PACKAGE))
    assert "Success" in out


# ---------------------------------------------------------------------------------------------------------------------
# The loader's order, on copies of the package outside the repository
# ---------------------------------------------------------------------------------------------------------------------
def import_from(path, **env):
    """(LIBRARY_PATH, LIBRARY_SOURCE) of `import hammer` with only `path` on PYTHONPATH, or the ImportError text."""
    r = subprocess.run([sys.executable, "-c", "import hammer; print(hammer.LIBRARY_PATH); print(hammer.LIBRARY_SOURCE)"],
                       capture_output=True, text=True, timeout=60, env=clean_env(PYTHONPATH=str(path), **env),
                       cwd=str(path))
    if r.returncode != 0:
        return "ImportError", r.stderr
    return tuple(r.stdout.split("\n")[:2])


def system_has_libhammer():
    r = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL('{SONAME}')"], env=clean_env(),
                       capture_output=True, timeout=60)
    return r.returncode == 0


def test_loader_order(tmp_path):
    real = os.path.realpath(hammer.LIBRARY_PATH)
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "hammer", ignore=shutil.ignore_patterns("_lib", "__pycache__"))
    system_dir = tmp_path / "system"
    system_dir.mkdir()
    shutil.copy(real, system_dir / SONAME)
    other = tmp_path / "other.so"
    shutil.copy(real, other)

    # Nothing but the system: LD_LIBRARY_PATH stands for an ldconfig'd /usr/local/lib.
    assert import_from(site, LD_LIBRARY_PATH=str(system_dir)) == (str(system_dir / SONAME), "system")
    if not system_has_libhammer():
        source, message = import_from(site)
        assert source == "ImportError" and "make install" in message and "HAMMER_LIBRARY" in message
    # The wheel's copy comes before the system.
    (site / "hammer" / "_lib").mkdir()
    shutil.copy(real, site / "hammer" / "_lib" / SONAME)
    wheel_copy = str(site / "hammer" / "_lib" / SONAME)
    assert import_from(site, LD_LIBRARY_PATH=str(system_dir)) == (wheel_copy, "wheel")
    # HAMMER_LIBRARY comes first, and alone: a bad one is an ImportError, not a fallback.
    assert import_from(site, HAMMER_LIBRARY=str(other), LD_LIBRARY_PATH=str(system_dir)) == (str(other),
                                                                                            "HAMMER_LIBRARY")
    source, message = import_from(site, HAMMER_LIBRARY=str(tmp_path / "missing.so"))
    assert source == "ImportError" and "HAMMER_LIBRARY" in message and "missing.so" in message


# ---------------------------------------------------------------------------------------------------------------------
# make wheel + a fresh venv; pip install ./bindings/python against make install
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wheel():
    pytest.importorskip("hatchling")  # make deps installs it (make wheel builds without build isolation)
    out = run(["make", "--no-print-directory", "-C", ROOT, "wheel"], env=clean_env(), timeout=900)
    path = out.strip().splitlines()[-1]
    assert os.path.isfile(os.path.join(ROOT, path)), out
    return os.path.join(ROOT, path)


def venv(path, system_site=False):
    """A new venv without pip of its own (pip --python installs into it); returns its python."""
    run([sys.executable, "-m", "venv", "--without-pip", *(["--system-site-packages"] if system_site else []),
         str(path)])
    return str(path / "bin" / "python")


def pip_into(python, *args):
    return run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", *args],
               env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"))


def test_wheel_contents(wheel):
    name = os.path.basename(wheel)
    assert re.fullmatch(rf"hammer_ratelimit-{re.escape(hammer.__version__)}-py3-none-manylinux_2_\d+_x86_64\.whl",
                        name), name
    with zipfile.ZipFile(wheel) as z:
        files = {f for f in z.namelist() if not f.endswith("/")}   # auditwheel also writes folders' entries
        package = {f[len("hammer/"):] for f in files if f.startswith("hammer/")}
        assert package == MODULES | {f"_lib/{SONAME}"}, package
        libs = sorted(f for f in files if f.startswith("hammer_ratelimit.libs/"))
        lib = z.read(f"hammer/_lib/{SONAME}")
        wheel_meta = z.read(f"hammer_ratelimit-{hammer.__version__}.dist-info/WHEEL").decode()
    assert lib.startswith(b"\x7fELF") and b".debug_info" not in lib, "a stripped shared library"
    assert "Root-Is-Purelib: false" in wheel_meta
    assert re.search(r"^Tag: py3-none-manylinux_2_\d+_x86_64$", wheel_meta, re.M), wheel_meta
    # auditwheel's copies, under hashed names: hiredis and OpenSSL, nothing else.
    assert [re.sub(r"-[0-9a-f]{8}\.so.*", "", os.path.basename(f)) for f in libs] == sorted(BUNDLED), libs


def test_auditwheel_show(wheel):
    pytest.importorskip("auditwheel")   # deps/pip.txt
    out = run([sys.executable, "-m", "auditwheel", "show", wheel]).replace("\n", " ")
    assert re.search(r'consistent with the following platform tag: "manylinux_2_\d+_x86_64"', out), out
    assert "external shared libraries are required" not in out, out   # it would list what the wheel lacks


def test_wheel_in_a_fresh_venv(wheel, tmp_path, redis_server):
    python = venv(tmp_path / "venv")
    pip_into(python, wheel)
    code = textwrap.dedent(f"""
        import asyncio, os, hammer, hammer.aio
        assert hammer.LIBRARY_SOURCE == "wheel", hammer.LIBRARY_SOURCE
        assert hammer.LIBRARY_PATH.startswith({str(tmp_path)!r}), hammer.LIBRARY_PATH
        assert hammer.__file__.startswith({str(tmp_path)!r}), hammer.__file__
        assert os.path.exists(os.path.join(os.path.dirname(hammer.__file__), "py.typed"))
        with hammer.Hammer({redis_server.url()!r}) as h:
            print(h.hit("venv:wheel", hammer.Limit.gcra(5, 60_000)).remaining)
        async def main():
            async with hammer.aio.Hammer({redis_server.url()!r}) as h:
                return (await h.peek("venv:wheel", hammer.Limit.gcra(5, 60_000))).remaining
        print(asyncio.run(main()))
        print(hammer.__version__)
        # Every shared library this process maps, after a TLS connection (libssl loaded and used).
        with hammer.Hammer({redis_server.tls_url()!r}) as h:
            h.peek("venv:wheel", hammer.Limit.gcra(5, 60_000))
        print(" ".join(sorted({{line.split()[-1] for line in open("/proc/self/maps") if ".so" in line}})))
    """)
    out = run([python, "-c", code], env=clean_env(), cwd=str(tmp_path))
    lines = out.splitlines()
    assert lines[:3] == ["4", "4", hammer.__version__], out
    # The wheel's own copies are the ones mapped (Python's ssl module maps the system's OpenSSL for itself: a second
    # copy, as with any manylinux wheel that bundles it; the system's hiredis must not be there at all).
    venv_dir = str(tmp_path / "venv")
    mapped = lines[3].split()
    ours = {os.path.basename(p) for p in mapped if p.startswith(venv_dir)}
    assert SONAME in ours and all(any(m.startswith(b + "-") for m in ours) for b in BUNDLED), mapped
    assert not [p for p in mapped if os.path.basename(p).startswith("libhiredis") and not p.startswith(venv_dir)]
    out = run([python, "-m", "hammer", f"redis://127.0.0.1:{redis_server.port}", "reset", "venv:wheel"],
              env=clean_env(), cwd=str(tmp_path))
    assert out.strip() == "venv:wheel: 1 keys deleted"

    # ldd of the installed library: each dependency resolves into the wheel's hammer_ratelimit.libs, or is glibc's;
    # none is missing.
    site = run([python, "-c", "import hammer, os; print(os.path.dirname(os.path.dirname(hammer.__file__)))"],
               env=clean_env(), cwd=str(tmp_path)).strip()
    ldd = run(["ldd", os.path.join(site, "hammer", "_lib", SONAME)], env=clean_env())
    assert "not found" not in ldd, ldd
    for line in ldd.splitlines():
        name, _, where = line.strip().partition(" => ")
        name = name.split()[0]
        if name in GLIBC or name.startswith("/lib") and os.path.basename(name) in GLIBC:
            continue
        assert where.startswith(os.path.join(site, "hammer", "_lib", "..", "..", "hammer_ratelimit.libs")) or \
            os.path.realpath(where.split()[0]).startswith(os.path.join(os.path.realpath(site),
                                                                       "hammer_ratelimit.libs")), line


def test_wheel_where_neither_hiredis_openssl_nor_swift_is(wheel, tmp_path, redis_server):
    """The wheel in a mount namespace where the system's libhiredis, libssl, libcrypto, libstdc++ and libgcc_s are
    empty files and the Swift toolchain an empty folder: a machine that never installed them (nor C++'s runtime)."""
    names = ("libhiredis.so.0.14", "libssl.so.3", "libcrypto.so.3", "libstdc++.so.6", "libgcc_s.so.1")
    hidden = sorted({os.path.realpath(os.path.join("/usr/lib/x86_64-linux-gnu", n)) for n in names
                     if os.path.exists(os.path.join("/usr/lib/x86_64-linux-gnu", n))})
    swift = shutil.which("swift")
    toolchain = os.path.dirname(os.path.dirname(os.path.realpath(swift))) if swift else None
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare --mount is not permitted here (needs root)")
    python = venv(tmp_path / "venv")
    pip_into(python, wheel)
    code = textwrap.dedent(f"""
        import ctypes, shutil
        for name in {names!r}:
            try:
                ctypes.CDLL(name)
                raise SystemExit(name + " is still loadable")
            except OSError:
                pass
        assert shutil.which("swift") is None
        import hammer
        with hammer.Hammer({redis_server.tls_url()!r}) as h:
            print(h.hit("venv:bare", hammer.Limit.gcra(5, 60_000)).remaining)
            h.delete_buckets("venv:bare")
    """)
    mounts = " && ".join([f"mount --bind /dev/null {p}" for p in hidden]
                         + ([f"mount -t tmpfs none {toolchain}"] if toolchain else []))
    script = f"{mounts} && exec {python} -c {shlex.quote(code)}"
    env = clean_env(PATH=":".join(p for p in os.environ["PATH"].split(":") if not toolchain or
                                  not p.startswith(toolchain)))
    r = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                       env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["4"], r.stdout


# ---------------------------------------------------------------------------------------------------------------------
# make sdist: the source package holds what `make lib` reads, and builds (Swift present) into a working wheel
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sdist():
    pytest.importorskip("hatchling")
    pytest.importorskip("build")   # deps/pip.txt
    out = run(["make", "--no-print-directory", "-C", ROOT, "sdist"], env=clean_env(), timeout=300)
    path = os.path.join(ROOT, out.strip().splitlines()[-1])
    assert os.path.isfile(path), out
    return path


def git_files(*paths):
    out = run(["git", "-C", ROOT, "ls-files", *paths])
    return set(out.split())


def test_sdist_contents(sdist):
    top = f"hammer_ratelimit-{hammer.__version__}/"
    with tarfile.open(sdist) as t:
        names = {n[len(top):] for n in t.getnames() if n.startswith(top) and not t.getmember(n).isdir()}
    package = {n[len("hammer/"):] for n in names if n.startswith("hammer/")}
    assert package == MODULES, package
    native = {n[len("native/"):] for n in names if n.startswith("native/")}
    # Every tracked file the library's build reads: Package.swift names the Swift tests' folders too.
    need = git_files("Makefile", "Package.swift", "Sources", "Tests", "include", "lua", "hammer.map", "pkgconfig")
    assert need - native == set(), sorted(need - native)
    assert {"Makefile", "Package.swift", "include/hammer.h", "hammer.map", "Sources/Hammer/CAPI/CAPI.swift",
            "Sources/HammerCore/Lua.generated.swift", "lua/generate.py"} <= native
    assert not [n for n in native if n.startswith((".build/", "build/"))], "no build output"
    assert {"pyproject.toml", "hatch_build.py", "README.md", "PKG-INFO"} <= names


def test_sdist_builds_with_swift(sdist, tmp_path, redis_server):
    """pip builds the sdist's wheel (make lib inside it: about a minute here) and the wheel works in a fresh venv."""
    if shutil.which("swift") is None:
        pytest.skip("no Swift on the PATH")
    out_dir = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out_dir), sdist],
        env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"), timeout=1200)
    (wheel_file,) = os.listdir(out_dir)
    assert re.fullmatch(rf"hammer_ratelimit-{re.escape(hammer.__version__)}-py3-none-linux_\w+\.whl", wheel_file)
    python = venv(tmp_path / "venv")
    pip_into(python, str(out_dir / wheel_file))
    code = (f"import hammer; assert hammer.LIBRARY_SOURCE == 'wheel'; h = hammer.Hammer({redis_server.url()!r}); "
            "print(h.hit('venv:sdist', hammer.parse('3/minute')[0]).remaining); h.delete_buckets('venv:sdist')")
    assert run([python, "-c", code], env=clean_env(), cwd=str(tmp_path)).split() == ["2"]


def test_source_package_against_an_installed_library(tmp_path, redis_server):
    pytest.importorskip("hatchling")
    prefix = tmp_path / "prefix"
    run(["make", "--no-print-directory", "-C", ROOT, "install", f"PREFIX={prefix}"], env=clean_env(), timeout=900)
    # System site-packages only lend the build backend (hatchling) to pip install --no-build-isolation.
    python = venv(tmp_path / "venv", system_site=True)
    pip_into(python, "--no-build-isolation", os.path.join(ROOT, "bindings", "python"))
    code = ("import hammer; print(hammer.LIBRARY_SOURCE); print(hammer.LIBRARY_PATH); print(hammer.__file__); "
            f"h = hammer.Hammer({redis_server.url()!r}); print(h.count_hit('venv:src', 1, 1000)); h.close()")
    out = run([python, "-c", code], env=clean_env(LD_LIBRARY_PATH=str(prefix / "lib")), cwd=str(tmp_path))
    source, path, module, count = out.split()
    assert source == "system" and path == str(prefix / "lib" / SONAME)
    assert module.startswith(str(tmp_path / "venv")), "the installed package, not the repository's"
    assert not os.path.exists(os.path.join(os.path.dirname(module), "_lib")), "a source install carries no library"
    assert count == "1"

    # The installed package's types reach a user's mypy through py.typed.
    if subprocess.run([python, "-c", "import mypy"], capture_output=True).returncode != 0:
        return
    user = tmp_path / "user.py"
    user.write_text(textwrap.dedent("""
        import hammer
        def wait(h: hammer.Hammer) -> float:
            return h.hit("x", hammer.Limit.gcra(1, 1000)).retry_after
    """))
    r = subprocess.run([python, "-m", "mypy", "--strict", "--no-incremental", str(user)], capture_output=True,
                       text=True, env=clean_env(), cwd=str(tmp_path), timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r'got "(float \| None|Optional\[float\])", expected "float"', r.stdout), r.stdout
    assert "missing library stubs or py.typed" not in r.stdout


def test_sdist_without_swift_says_what_it_needs(sdist, tmp_path):
    swift = shutil.which("swift")
    toolchain = os.path.dirname(os.path.realpath(swift)) if swift else None
    path = ":".join(p for p in os.environ["PATH"].split(":")
                    if not toolchain or os.path.realpath(p) != toolchain and shutil.which("swift", path=p) is None)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp_path), sdist], capture_output=True, text=True, timeout=300,
                       env=clean_env(PATH=path, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert r.returncode != 0 and not list(tmp_path.glob("*.whl"))
    assert "needs make and Swift 6 on the PATH" in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    assert "manylinux wheel needs none of them" in r.stdout + r.stderr
