"""Every example of the documentation runs: the fenced blocks of README.md and docs/*.md whose info string is
`python runnable` or `c runnable` are extracted and run against a throwaway redis-server (the examples' address
127.0.0.1:6379 becomes its port). Python runs with the checkout's package and library; C is compiled with
-Wall -Wextra -Werror against include/ and build/lib. A python or c block in docs/ without the mark fails the first
test, so no example is left out by accident (README.md may keep fragments: its reference moved to docs/)."""
import glob
import os
import re
import subprocess
import sys

import pytest

from redis_server import RedisServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
PAGES = [os.path.join(ROOT, "README.md")] + DOCS
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.M | re.S)
TIMEOUT = 120


def blocks(path):
    """(line, language, marks, text) of each fenced block of a page."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for m in FENCE.finditer(text):
        words = m.group(1).split()
        yield text.count("\n", 0, m.start()) + 1, (words[0] if words else ""), words[1:], m.group(2)


EXAMPLES = [(os.path.relpath(p, ROOT), line, lang, code) for p in PAGES for line, lang, marks, code in blocks(p)
            if lang in ("python", "c") and "runnable" in marks]


def test_every_example_in_docs_is_marked_runnable():
    assert DOCS, "docs/ has no pages"
    unmarked = [f"{os.path.relpath(p, ROOT)}:{line}" for p in DOCS for line, lang, marks, _ in blocks(p)
                if lang in ("python", "c") and "runnable" not in marks]
    assert not unmarked, f"examples that the tests do not run: {unmarked}"
    assert any(lang == "python" for _, _, lang, _ in EXAMPLES) and any(lang == "c" for _, _, lang, _ in EXAMPLES)


@pytest.fixture(scope="module")
def redis():
    with RedisServer() as r:
        yield r


@pytest.mark.parametrize("page,line,lang,code", EXAMPLES, ids=[f"{p}:{line}" for p, line, _, _ in EXAMPLES])
def test_example_runs(page, line, lang, code, redis, tmp_path):
    code = code.replace("127.0.0.1:6379", f"127.0.0.1:{redis.port}")
    lib = os.path.join(ROOT, "build", "lib")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"),
               HAMMER_LIBRARY=os.environ.get("HAMMER_LIBRARY", os.path.join(lib, "libhammer.so")),
               LD_LIBRARY_PATH=lib)
    if lang == "python":
        (tmp_path / "example.py").write_text(code)
        run = [sys.executable, "example.py"]
    else:
        (tmp_path / "example.c").write_text(code)
        cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "include"),
                             "example.c", "-L", lib, "-lhammer", "-o", "example"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=TIMEOUT)
        assert cc.returncode == 0, f"{page}:{line} does not compile:\n{cc.stderr}"
        run = ["./example"]
    p = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, f"{page}:{line} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"


def _anchors(path):
    """GitHub's anchors of a page's headings (lower case, punctuation dropped, spaces to dashes)."""
    out = set()
    fenced = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fenced = not fenced
            elif not fenced and line.startswith("#"):
                title = line.lstrip("#").strip().lower()
                out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_links_between_pages_resolve():
    """Every relative link of README.md and docs/ names a file that exists, and an anchor that file has."""
    bad = []
    for page in PAGES:
        with open(page, encoding="utf-8") as f:
            text = f.read()
        text = FENCE.sub("", text)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
            if not os.path.exists(path):
                bad.append(f"{os.path.relpath(page, ROOT)}: {target} (no such file)")
            elif anchor and path.endswith(".md") and anchor not in _anchors(path):
                bad.append(f"{os.path.relpath(page, ROOT)}: {target} (no such heading)")
    assert not bad, bad
