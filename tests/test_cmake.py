"""CMake: `make install` writes lib/cmake/hammer/hammerConfig.cmake and its version file, and find_package(hammer)
gives the imported target hammer::hammer: bindings/c/CMakeLists.txt configures, builds and runs the C example from an
installed tree (PREFIX, and a DESTDIR-staged tree, which works where it lies since its paths are relative)."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 600  # `make install` may have to build the library first


def run(cmd, ok=True, **kw):
    kw.setdefault("timeout", 300)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if ok:
        assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def env():
    return {k: v for k, v in os.environ.items()
            if k not in ("DESTDIR", "PREFIX", "MAKEFLAGS", "MFLAGS", "HAMMER_URL", "LD_LIBRARY_PATH")}


@pytest.fixture(scope="module")
def cmake():
    path = shutil.which("cmake")
    if path is None:
        pytest.fail("cmake is not installed (apt-get install -y cmake; make deps does)")
    return path


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    p = tmp_path_factory.mktemp("cmake-prefix")
    run(["make", "--no-print-directory", "-C", ROOT, "install", f"PREFIX={p}"], env=env(), timeout=TIMEOUT)
    return p


def version():
    return re.search(r'^#define HAMMER_VERSION_STRING "([^"]+)"', open(os.path.join(ROOT, "include", "hammer.h")).read(),
                     re.M).group(1)


def build_example(cmake, prefix, build_dir):
    run([cmake, "-S", os.path.join(ROOT, "bindings", "c"), "-B", str(build_dir), f"-DCMAKE_PREFIX_PATH={prefix}",
         "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror"], env=env())
    run([cmake, "--build", str(build_dir)], env=env())
    return str(build_dir / "example")


def check_runs(exe, lib_dir, redis_server):
    ldd = run(["ldd", exe]).stdout
    m = re.search(r"libhammer\.so\.\d+ => (\S+)", ldd)
    assert m and os.path.realpath(m.group(1)) == os.path.realpath(os.path.join(lib_dir, f"libhammer.so.{version()}"))
    out = run([exe, redis_server.url()], env=env()).stdout
    assert re.search(r"request\s+\d+: allowed", out) and re.search(r"request\s+\d+: denied", out), out


def test_config_files_installed(prefix):
    d = prefix / "lib" / "cmake" / "hammer"
    assert sorted(os.listdir(d)) == ["hammerConfig.cmake", "hammerConfigVersion.cmake"]
    text = (d / "hammerConfig.cmake").read_text()
    assert "hammer::hammer" in text and str(prefix) not in text, "paths relative to the file, not the prefix"
    assert f'set(PACKAGE_VERSION "{version()}")' in (d / "hammerConfigVersion.cmake").read_text()


def test_example_builds_with_find_package_and_runs(cmake, prefix, tmp_path, redis_server):
    exe = build_example(cmake, prefix, tmp_path / "build")
    check_runs(exe, prefix / "lib", redis_server)


def test_staged_tree_is_usable_where_it_lies(cmake, tmp_path, redis_server):
    stage = tmp_path / "stage"
    run(["make", "--no-print-directory", "-C", ROOT, "install", f"DESTDIR={stage}", "PREFIX=/opt/hammer-cmake"],
        env=env(), timeout=TIMEOUT)
    root = stage / "opt" / "hammer-cmake"
    assert str(stage) not in (root / "lib" / "cmake" / "hammer" / "hammerConfig.cmake").read_text()
    exe = build_example(cmake, root, tmp_path / "build")
    check_runs(exe, root / "lib", redis_server)


def version_cases():
    """(what find_package asks, whether this version satisfies it): before 1.0 a minor version may break the ABI,
    so 0.x accepts 0.x.* only; from 1.0 on, the same major at this version or below."""
    major, minor, patch = map(int, version().split("."))
    v = f"{major}.{minor}.{patch}"
    cases = [("", True), (v, True), (f"{v} EXACT", True), (f"{major}.{minor}", True), (f"{major}.{minor + 1}", False),
             (f"{major + 1}.0", False), (f"{major}.{minor}.{patch + 1}", False)]
    if major == 0:
        cases += [(f"0.{minor - 1}", False)] if minor else []
    else:
        cases += [(f"{major}", True), (f"{major - 1}.9", False)]
        cases += [(f"{major}.{minor - 1}", True)] if minor else []
    return cases


def test_version_file(cmake, prefix, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, (request_version, found) in enumerate(version_cases()):
        (src / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.13)\nproject(v NONE)\n"
                                            f"find_package(hammer {request_version} REQUIRED)\n"
                                            'message(STATUS "hammer ${hammer_VERSION}")\n')
        r = run([cmake, "-S", str(src), "-B", str(tmp_path / f"b{i}"), f"-DCMAKE_PREFIX_PATH={prefix}"], ok=False,
                env=env())
        assert (r.returncode == 0) == found, (request_version, r.stdout + r.stderr)
        if found:
            assert f"hammer {version()}" in r.stdout


def test_uninstall_removes_the_config_files(tmp_path):
    stage = tmp_path / "stage"
    args = [f"DESTDIR={stage}", "PREFIX=/usr/local"]
    run(["make", "--no-print-directory", "-C", ROOT, "install", *args], env=env(), timeout=TIMEOUT)
    assert (stage / "usr" / "local" / "lib" / "cmake" / "hammer" / "hammerConfig.cmake").exists()
    run(["make", "--no-print-directory", "-C", ROOT, "uninstall", *args], env=env())
    assert not (stage / "usr" / "local" / "lib" / "cmake" / "hammer").exists()
