"""The libFuzzer targets of tests/fuzz (built with clang, ASan+UBSan): each runs over seeds made
from ../shared and over its regression inputs (tests/fuzz/regress/NAME/, one per crash found),
then fuzzes for a few seconds. One sub-result per target. `make fuzz` runs them for longer."""
import glob, os, re, subprocess, time
from lib import ROOT, BUILD, PY, run, tmpdir, rmtree

FZ = os.path.join(BUILD, "fuzz")
SMOKE_S = int(os.environ.get("LLMREPLAY_FUZZ_SMOKE_S", "3"))


def fuzz_env(extra=None):
    env = dict(os.environ, **(extra or {}))
    env["ASAN_OPTIONS"] = "detect_leaks=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


def test_fuzz_targets():
    r = run(["make", "-s", "--no-print-directory", "-C", ROOT, "fuzz-build"], timeout=600)
    assert r.returncode == 0, "make fuzz-build failed: " + r.stderr.decode(errors="replace")[-1500:]
    names = sorted(os.path.basename(p)[5:-2] for p in glob.glob(os.path.join(ROOT, "tests", "fuzz", "fuzz_*.c")))
    assert len(names) >= 10, names
    work = tmpdir()
    try:
        seeds = os.path.join(work, "seeds")
        run([PY, os.path.join(ROOT, "tests", "fuzz", "seeds.py"), seeds, "60"], check=True, timeout=120)
        for name in names:
            yield (name,) + one(name, seeds, work)
        # LLMREPLAY_NORMALIZE is read once per process: record mode's normalization in a run of its own
        yield ("record-normalize",) + one("record", seeds, work, {"LR_FUZZ_NORMALIZE": "1"}, "-normalize")
    finally:
        rmtree(work)


def one(name, seeds, work, extra=None, tag=""):
    regress = os.path.join(ROOT, "tests", "fuzz", "regress", name)
    inputs = [d for d in (os.path.join(seeds, name), regress) if os.path.isdir(d)]
    n_in = sum(len(os.listdir(d)) for d in inputs)
    if not n_in:
        return False, "no seeds and no regression inputs"
    corpus = os.path.join(work, "corpus-" + name + tag)
    os.makedirs(corpus)
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(FZ, "fuzz_" + name), f"-max_total_time={SMOKE_S}", "-max_len=65536", "-timeout=10",
             "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={work}/{name}{tag}-", corpus] + inputs,
                       env=fuzz_env(extra), cwd=ROOT, timeout=SMOKE_S + 120, capture_output=True, stdin=subprocess.DEVNULL)
    err = r.stderr.decode(errors="replace")
    execs = re.findall(r"stat::number_of_executed_units: *(\d+)", err)
    if r.returncode != 0:
        what = next((l for l in err.splitlines() if re.search(r"ERROR: |runtime error|Timeout|out-of-memory|abort", l)), err[-300:])
        return False, f"after {execs[-1] if execs else '?'} executions: {what.strip()}"
    if not execs or int(execs[0]) < n_in:
        return False, f"ran {execs} inputs of {n_in}"
    return True, f"{n_in} seed and regression inputs, {execs[0]} executions in {time.monotonic() - t0:.1f} s"
