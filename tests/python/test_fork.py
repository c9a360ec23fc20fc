"""A handle inherited across fork() (gunicorn --preload, uwsgi, celery prefork, multiprocessing's 'fork'): each
process gets its own answers, never another process's, and the parent's handle keeps working."""
import multiprocessing
import os

import hammer

HITS = 120


def hit_own_and_shared(h, own, shared):
    """HITS hits on a fresh bucket of this process (counts must be 1, 2, ...) and on a shared one; returns
    (wrong answers, the shared counts)."""
    wrong, counts = 0, []
    for i in range(HITS):
        if h.count_hit(own, 1, 1000) != i + 1:
            wrong += 1
        counts.append(h.count_hit(shared, 1, 1000))
    return wrong, counts


def test_os_fork_children_use_the_inherited_handle(h, uid):
    h.count_hit(f"{uid}:warm", 1, 1000)   # the pool has connections before the fork
    for rnd in range(4):
        shared = f"{uid}:shared:{rnd}"
        children = []
        for k in range(4):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:   # the child: report over the pipe, never return into pytest
                code = 1
                try:
                    os.close(r)
                    wrong, counts = hit_own_and_shared(h, f"{uid}:own:{rnd}:{os.getpid()}", shared)
                    os.write(w, (" ".join(map(str, counts)) + "\n").encode())
                    code = 0 if wrong == 0 else 2
                finally:
                    os._exit(code)
            os.close(w)
            children.append((pid, r))
        wrong, counts = hit_own_and_shared(h, f"{uid}:own:{rnd}:parent", shared)
        assert wrong == 0, "the parent's own counts were 1..HITS"
        for pid, r in children:
            with os.fdopen(r) as f:
                counts += [int(x) for x in f.read().split()]
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child {pid}: status {status}"
        assert sorted(counts) == list(range(1, 5 * HITS + 1)), "every shared count given exactly once"
        assert h.get_bucket(shared, 1).count == 5 * HITS


def _mp_child(h, own, shared, q):
    q.put(hit_own_and_shared(h, own, shared))


def test_multiprocessing_fork_context(h, uid):
    h.count_hit(f"{uid}:warm", 1, 1000)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    shared = f"{uid}:mp-shared"
    procs = [ctx.Process(target=_mp_child, args=(h, f"{uid}:mp-own:{k}", shared, q)) for k in range(4)]
    for p in procs:
        p.start()
    wrong, counts = hit_own_and_shared(h, f"{uid}:mp-own:parent", shared)
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert wrong == 0 and all(w == 0 for w, _ in results), "each process's own counts were 1..HITS"
    for _, c in results:
        counts += c
    assert sorted(counts) == list(range(1, 5 * HITS + 1))
    assert h.stats().connections <= 8, "the parent's pool is intact"


def test_child_statistics_start_afresh(h, uid):
    for _ in range(5):
        h.count_hit(f"{uid}:s", 1, 1000)
    assert h.stats().calls >= 5
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            s0 = h.stats()
            h.count_hit(f"{uid}:s", 1, 1000)
            s1 = h.stats()
            os.write(w, f"{s0.calls} {s1.calls} {s1.connections}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        c0, c1, conns = map(int, f.read().split())
    os.waitpid(pid, 0)
    assert (c0, c1) == (0, 1), "a child counts its own calls only"
    assert conns == 1, "the child opened one connection of its own"
    assert h.count_hit(f"{uid}:s", 1, 1000) == 7, "the parent's handle goes on"


def test_a_child_closing_the_inherited_handle_leaves_the_parents_connections(h, uid):
    """A worker that exits closes the handle it inherited: nothing may reach the parent's connections (over TLS a
    close_notify would end the parent's sessions, and each connection would have to be made again)."""
    for i in range(16):
        h.count_hit(f"{uid}:warm", 1, 1000)
    before = h.stats()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            h.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    for i in range(40):
        assert h.count_hit(f"{uid}:after", 1, 1000) == i + 1
    after = h.stats()
    assert after.reconnects == before.reconnects, "the parent had to reconnect: the child touched its connections"
    assert after.errors == before.errors
