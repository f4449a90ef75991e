"""The C unit tests of the engine (tests/c/unit_engine.c, tests/c/unit_ops.c) and of the HTTP
parser (tests/c/unit_http.c), and of what hostile input may cost (tests/c/unit_hostile.c), one sub-result per check line, in the
plain build and in the ASan+UBSan build with leak checking on."""
import os, subprocess
from lib import ROOT, TESTS


def _env(**extra):
    # No shim and no LLMREPLAY_* settings from the caller: the binary sets what it tests.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


def _unit(binary, env):
    path = os.path.join(TESTS, binary)
    if not os.path.exists(path):
        yield "build", False, f"{path} is missing: make all asan build/tests/{binary}"
        return
    # cwd ROOT: the binary reads the seed recording from ../shared/seed/.
    r = subprocess.run([path], cwd=ROOT, env=env, capture_output=True, timeout=60)
    lines = r.stdout.decode(errors="replace").splitlines()
    failed = False
    for line in lines:
        if line.startswith("ok "):
            yield line[3:], True, ""
        elif line.startswith("not ok "):
            failed = True
            name, _, detail = line[7:].partition(": ")
            yield name, False, detail
    # A crash, a sanitizer report or a leak shows in the status (and on stderr), not in a line.
    ok = r.returncode == 0 and not failed and bool(lines)
    err = r.stderr.decode(errors="replace").strip()
    yield "exit", ok, "" if ok else f"exit status {r.returncode}, {len(lines)} lines; stderr: {err[-3000:]}"


def test_unit_engine():
    yield from _unit("unit_engine", _env())


def test_unit_engine_asan():
    yield from _unit("asan_unit_engine",
                     _env(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                          UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"))


def test_unit_http():
    yield from _unit("unit_http", _env())


def test_unit_http_asan():
    yield from _unit("asan_unit_http",
                     _env(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                          UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"))


def test_unit_ops():
    # tests/c/unit_ops.c: a made-up operation added as one table row; stable keys; index rebuilt.
    yield from _unit("unit_ops", _env())


def test_unit_ops_asan():
    yield from _unit("asan_unit_ops",
                     _env(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                          UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"))


def test_unit_raw():
    # tests/c/unit_raw.c: wire-level keys, hostile queries and multipart bodies at guard pages.
    yield from _unit("unit_raw", _env())


def test_unit_raw_asan():
    yield from _unit("asan_unit_raw",
                     _env(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                          UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"))


def test_unit_hostile():
    # tests/c/unit_hostile.c: issue 17's regression checks (cost and crashes on hostile input).
    yield from _unit("unit_hostile", _env())


def test_unit_hostile_asan():
    yield from _unit("asan_unit_hostile",
                     _env(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                          UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"))
