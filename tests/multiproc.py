"""Spawned worker processes for the tests that count across processes."""
import multiprocessing


def run_in_processes(target, args, procs, timeout=120):
    """Runs target(*args, queue) in `procs` spawned processes; returns what each put on the queue, after checking
    that every process exited 0. A worker puts repr(exception) on failure, so the caller's assertion shows it."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    ps = [ctx.Process(target=target, args=(*args, queue)) for _ in range(procs)]
    for p in ps:
        p.start()
    got = [queue.get(timeout=timeout) for _ in range(procs)]
    for p in ps:
        p.join(30)
        assert p.exitcode == 0
    return got
