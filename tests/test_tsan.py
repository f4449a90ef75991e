"""The suite's threaded scenarios under ThreadSanitizer (`make tsan`: build/tsan/): 16 libcurl
threads, 32 concurrent socket clients (Python threads and asyncio), concurrent HTTPS through
hooked TLS (Python) and terminated TLS (Node, the helper TSan-built too), concurrent recorders
against tests/fake_upstream.py (libcurl threads and Python threads over sockets), and fork while
busy. Each must answer correctly with no TSan report; tests/tsan.supp lists the accepted ones
(none in llmreplay's code). Programs that are not TSan-built preload libtsan.so.2 first."""
import glob, json, os, subprocess
from lib import *
from test_corpus import _jobs, _parse_transcript, _check_events
from test_sockets import CONCURRENT, _unshare
from test_record import upstream, CHAT

TS = os.path.join(BUILD, "tsan")
TS_LIB = os.path.join(TS, "libllmreplay.so")
SUPP = os.path.join(ROOT, "tests", "tsan.supp")


def _rt():
    return subprocess.run(["cc", "-print-file-name=libtsan.so.2"], capture_output=True, text=True).stdout.strip()


def tsan_env(env, preload_rt=True):
    env = dict(env)
    env["LD_PRELOAD"] = (_rt() + ":" if preload_rt else "") + TS_LIB
    env["LLMREPLAY_BIN"] = os.path.join(TS, "llmreplay")  # the TLS helper, TSan-built too
    env["TSAN_OPTIONS"] = f"halt_on_error=0 exitcode=66 report_signal_unsafe=0 suppressions={SUPP}"
    return env


def _clean(r, what):
    err = r.stderr.decode(errors="replace")
    i = err.find("WARNING: ThreadSanitizer")
    assert i < 0 and r.returncode != 66, f"{what}: " + (err[i:i + 2500] if i >= 0 else err[-1500:])
    assert r.returncode == 0, f"{what} exited {r.returncode}: {err[-1500:]}"


def _build():
    r = run(["make", "-s", "--no-print-directory", "-C", ROOT, "all", "tsan"], timeout=900)
    assert r.returncode == 0, "make tsan failed: " + r.stderr.decode(errors="replace")[-1500:]


def test_tsan_threaded_scenarios():
    _build()
    for name, f in [("libcurl_16_threads", _curl_threads), ("sockets_32_clients", _sockets),
                    ("https_hooked_python", _https_python), ("https_terminated_node", _https_node),
                    ("recorders_concurrent", _recorders), ("fork_while_busy", _fork_busy)]:
        try:
            detail = f() or ""
            yield name, True, detail
        except AssertionError as e:
            yield name, False, str(e)[:3000]


def _curl_threads():
    items = distinct_requests(corpus_files())[:400]
    tmp = tmpdir()
    try:
        jf = _jobs(tmp, items)
        r = run([os.path.join(TS, "tests", "replay_client"), "threads:16", jf], env=tsan_env(shim_env(CORPUS), False),
                timeout=600)
        _clean(r, "replay_client threads:16")
        bad = [f for i, (f, rec, url) in enumerate(items)
               if _parse_transcript(os.path.join(tmp, f"{i}.out"))[1] != 0]
        assert not bad, f"{len(bad)} transfers failed, first {bad[0]}"
        return f"{len(items)} recordings"
    finally:
        rmtree(tmp)


def _concurrent(url, env, what):
    rec = load(SEED)
    want = "".join(expected(rec)[2])
    for mode in ("threads", "asyncio"):
        r = run(_unshare() + [PY, "-c", CONCURRENT, url, request_body(rec), want, mode], env=env, timeout=600)
        _clean(r, f"{what} {mode}")
        assert json.loads(r.stdout)["errors"] == [], r.stdout


def _sockets():
    _concurrent("http://api.openai.com/v1/chat/completions", tsan_env(shim_env(SEED_DIR)), "python sockets")


def _https_python():
    _concurrent("https://api.openai.com/v1/chat/completions", tsan_env(shim_env(SEED_DIR)), "python https")


def _https_node():
    from test_tls import NODE_CONCURRENT, _ca_file
    rec = load(SEED)
    want = "".join(expected(rec)[2])
    env = tsan_env(shim_env(SEED_DIR))
    env["NODE_EXTRA_CA_CERTS"] = _ca_file(shim_env(SEED_DIR))
    r = run(_unshare() + ["node", "--input-type=module", "-e", NODE_CONCURRENT, "https://api.openai.com/v1/chat/completions",
                          request_body(rec), want], env=env, timeout=600)
    _clean(r, "node fetch x48 over terminated TLS")
    assert json.loads(r.stdout) == {"errors": 0}, r.stdout


PY_RECORDERS = r'''
import sys, json, threading, requests
port = sys.argv[1]
errors = []
def worker(i):
    s = requests.Session()
    for k in range(3):
        body = {"model": "m", "stream": k == 1, "messages": [{"role": "user", "content": f"thread {i} turn {k}"}]}
        r = s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
        if r.status_code != 200 or b"thread" not in r.content: errors.append(r.status_code)
ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps({"errors": errors}))
'''


def _recorders():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        items = []
        for i in range(32):
            body = dict(CHAT, stream=bool(i % 2), messages=[{"role": "user", "content": f"libcurl {i}"}])
            items.append((f"job{i}", {"request": {"body": body}}, None))
        with upstream("--delay-ms", "5") as port:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            items = [(f, r, url) for f, r, _ in items]
            lines = []
            for i, (f, r, u) in enumerate(items):
                bf = os.path.join(tmp, f"{i}.req")
                with open(bf, "w") as fh:
                    json.dump(r["request"]["body"], fh)
                lines.append(f"POST\t{u}\t{bf}\t{os.path.join(tmp, f'{i}.out')}\n")
            with open(os.path.join(tmp, "jobs"), "w") as fh:
                fh.writelines(lines)
            env = tsan_env(shim_env(rec, LLMREPLAY_MODE="record", LLMREPLAY_LOG="warn"), False)
            r = run([os.path.join(TS, "tests", "replay_client"), "threads:8", os.path.join(tmp, "jobs")], env=env, timeout=600)
            _clean(r, "replay_client threads:8 recording")
            env = tsan_env(shim_env(rec, LLMREPLAY_MODE="record", LLMREPLAY_LOG="warn", LLMREPLAY_HOSTS=f"127.0.0.1:{port}"))
            r = run([PY, "-c", PY_RECORDERS, str(port)], env=env, timeout=600)
            _clean(r, "16 python threads recording over sockets")
            assert json.loads(r.stdout)["errors"] == [], r.stdout
        n = len(glob.glob(os.path.join(rec, "*.json")))
        assert n == 32 + 48, f"{n} recordings written, expected 80"
        return f"{n} recordings written"
    finally:
        rmtree(tmp)


def _fork_busy():
    tmp = tmpdir()
    try:
        seed = os.path.join(tmp, "seed.req")
        with open(seed, "w") as f:
            f.write(request_body(load(SEED)))
        r = run([os.path.join(TS, "tests", "fork_busy"), seed], env=tsan_env(shim_env(SEED_DIR), False), timeout=600)
        _clean(r, "fork_busy")
    finally:
        rmtree(tmp)
