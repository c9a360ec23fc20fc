"""Polling respects the CPUs the process may use: its affinity mask (taskset) and its cgroup's CPU quota, not the
machine's CPU count (a container limited to 2 CPUs on a 64-core host)."""
import os
import shutil
import subprocess
import sys

import pytest

import hammer

PROBE = ("import hammer, sys; h = hammer.Hammer(sys.argv[1]); print(h.stats().spin_cpus); h.close()")


def probe(url, prefix=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([*prefix, sys.executable, "-c", PROBE, url], capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1])


def test_unbounded_process_sees_every_allowed_cpu(redis_server):
    assert probe(redis_server.url()) == len(os.sched_getaffinity(0))


def test_affinity_mask_bounds_polling(redis_server):
    if len(os.sched_getaffinity(0)) < 2 or not shutil.which("taskset"):
        pytest.skip("needs 2 CPUs and taskset")
    cpu = min(os.sched_getaffinity(0))
    assert probe(redis_server.url(), ["taskset", "-c", str(cpu)]) == 1


def cpu_cgroup():
    """(kind, directory) of this machine's CPU controller hierarchy: cgroup v2 at the root, or v1's cpu controller."""
    root = "/sys/fs/cgroup"
    ctl = os.path.join(root, "cgroup.controllers")
    if os.path.exists(ctl):
        return ("v2", root) if "cpu" in open(ctl).read().split() else (None, None)
    for name in ("cpu", "cpu,cpuacct"):
        if os.path.exists(os.path.join(root, name, "cpu.cfs_quota_us")):
            return "v1", os.path.join(root, name)
    return None, None


def test_cgroup_cpu_quota_bounds_polling(redis_server):
    """A child cgroup with a quota of half a CPU (v2 cpu.max "50000 100000", or v1 cfs_quota_us 50000 per
    cfs_period_us 100000): the library counts 1 CPU, not the machine's."""
    if len(os.sched_getaffinity(0)) < 2 or os.geteuid() != 0:
        pytest.skip("needs 2 CPUs and root")
    kind, root = cpu_cgroup()
    if kind is None:
        pytest.skip("no cgroup CPU controller here")
    group = os.path.join(root, f"hammer-test-{os.getpid()}")
    try:
        try:
            if kind == "v2":
                with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
                    f.write("+cpu")
            os.mkdir(group)
            if kind == "v2":
                with open(os.path.join(group, "cpu.max"), "w") as f:
                    f.write("50000 100000")
            else:
                with open(os.path.join(group, "cpu.cfs_period_us"), "w") as f:
                    f.write("100000")
                with open(os.path.join(group, "cpu.cfs_quota_us"), "w") as f:
                    f.write("50000")
        except OSError as e:
            pytest.skip(f"cannot make a cgroup with a CPU quota here: {e}")
        # The shell moves itself into the group, then becomes the probe.
        script = f'echo $$ > {group}/cgroup.procs && exec "$@"'
        assert probe(redis_server.url(), ["sh", "-c", script, "sh"]) == 1
    finally:
        if os.path.isdir(group):
            os.rmdir(group)
