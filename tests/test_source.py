"""Rules the library's source keeps that no compiler checks.

The fork rule: a type with per-process state owns a ForkEpoch, and in a forked child its locks may have been held by a
parent's thread at the fork, forever. So every function of such a type that takes a lock runs the fork check first
(`epoch.check(...)`, or a helper that does, such as Router's `takeLock()`), or its doc comment says that its callers
ran it. A missed check hangs a child's first call (seen: Router.route, in CI)."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = os.path.join(ROOT, "Sources", "Hammer")

TOP = re.compile(r"^(?:final class|class|struct|enum|extension) (\w+)")
FUNC = re.compile(r"^\s*(?:@[\w()]+\s+)*(?:(?:private|fileprivate|static|override|public|internal)\s+)*"
                  r"(?:func \w+|init\(|init<|deinit\b|var \w+: [^=]+\{\s*$)")
TAKES_LOCK = re.compile(r"\block\(\)")


def unchecked_locks(text):
    """Functions of types owning a ForkEpoch that take a lock with no fork check before it: (line, declaration)."""
    lines = text.split("\n")
    tops = [(i, TOP.match(l).group(1)) for i, l in enumerate(lines) if TOP.match(l)]
    spans = {}
    for k, (i, name) in enumerate(tops):
        spans.setdefault(name, []).append((i, tops[k + 1][0] if k + 1 < len(tops) else len(lines)))
    owners = {n for n, ss in spans.items() if any("ForkEpoch()" in "\n".join(lines[a:b]) for a, b in ss)}
    found = []
    for name in sorted(owners):
        for a, b in spans[name]:
            starts = [i for i in range(a + 1, b) if FUNC.match(lines[i])] + [b]
            for s, e in zip(starts, starts[1:]):
                doc, k = [], s - 1
                while k > a and lines[k].strip().startswith(("///", "@")):
                    doc.append(lines[k])
                    k -= 1
                body = lines[s:e]
                for j in range(1, len(body)):
                    if TAKES_LOCK.search(body[j]) and "func " not in body[j]:
                        before = "\n".join(body[:j + 1])
                        if not ("epoch.check(" in before or "takeLock()" in before or "fork check" in "\n".join(doc)):
                            found.append((s + 1, f"{name}: {lines[s].strip()}"))
                        break
    return found


def test_every_lock_of_per_process_state_comes_after_the_fork_check():
    paths = sorted(glob.glob(os.path.join(SOURCES, "**", "*.swift"), recursive=True))
    assert len(paths) > 20
    owners = [p for p in paths if "ForkEpoch()" in open(p).read()]
    assert len(owners) >= 7, owners   # pool, router, engine slot, deny cache, policy, memory store, idle watch
    bad = [f"{os.path.relpath(p, ROOT)}:{line}: {what}" for p in owners for line, what in unchecked_locks(open(p).read())]
    assert not bad, "a lock taken with no fork check before it:\n" + "\n".join(bad)


def test_the_rule_finds_a_missed_check():
    # Router as it was before d771b89: route() took the lock a parent's thread may have held at the fork.
    before = """final class Router {
    private var lock = Lock()
    private let epoch = ForkEpoch()

    /// The pool of `node`.
    func pool(_ node: NodeAddress) -> Pool {
        epoch.check(afterFork)
        lock.lock()
        defer { lock.unlock() }
        return pools[node]!
    }

    func route(_ slot: Int) -> (NodeAddress, Pool)? {
        lock.lock()
        defer { lock.unlock() }
        return nil
    }

    /// Under the lock (its callers ran the fork check).
    private func fill() {
        lock.lock()
        lock.unlock()
    }
}

final class Engine {
    private var lock = Lock()
    func drain() {
        lock.lock()
        lock.unlock()
    }
}
"""
    assert unchecked_locks(before) == [(13, "Router: func route(_ slot: Int) -> (NodeAddress, Pool)? {")]
