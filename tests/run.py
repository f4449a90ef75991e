#!/usr/bin/python3
"""Test runner: runs every test_* function of tests/test_*.py (two at a time), prints one line
per test and closes with 'N passed, M failed'. A test may yield sub-results (name, ok, detail)
to report many checks, e.g. the lines of a C unit-test binary.

usage: tests/run.py [-k SUBSTRING] [-j JOBS]"""
import argparse, concurrent.futures as cf, importlib.util, inspect, os, sys, time, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def discover(pattern):
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fn[:-3], os.path.join(HERE, fn))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name, f in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("test_") and f.__module__ == mod.__name__:
                full = f"{fn[:-3]}::{name}"
                if not pattern or pattern in full:
                    tests.append((full, f, f.__code__.co_firstlineno))
    tests.sort(key=lambda t: (t[0].split("::")[0], t[2]))
    return tests


def run_one(full, f):
    t0 = time.monotonic()
    results = []
    try:
        r = f()
        if inspect.isgenerator(r):
            for name, ok, detail in r:
                results.append((f"{full}[{name}]", ok, detail))
        else:
            results.append((full, True, ""))
    except Exception as e:  # an assertion or any error fails the test, with its reason
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{os.path.basename(fr.filename)}:{fr.lineno}" for fr in reversed(tb)
                      if os.path.basename(fr.filename).startswith("test_")), "")
        results.append((full, False, f"{where} {detail}"))
    return results, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="")
    ap.add_argument("-j", type=int, default=int(os.environ.get("LLMREPLAY_TEST_JOBS", "2")))
    a = ap.parse_args()
    tests = discover(a.k)
    passed = failed = 0
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=a.j) as ex:
        futs = {ex.submit(run_one, full, f): full for full, f, _ in tests}
        for fut in cf.as_completed(futs):
            results, dt = fut.result()
            for name, ok, detail in results:
                if ok:
                    passed += 1
                    print(f"PASS {name} ({dt:.1f}s)", flush=True)
                else:
                    failed += 1
                    print(f"FAIL {name}: {detail}", flush=True)
    print(f"# {len(tests)} test functions in {time.monotonic() - t0:.1f}s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
