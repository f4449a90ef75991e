#!/usr/bin/python3
"""TLS-layer speed, all in one run and interleaved: the seed answer replayed to
(a) one Python http.client keep-alive connection over http:// and over https:// (hooked libssl:
    no handshake, plaintext through the SSL object), and the same with a new connection per
    request (the handshake's share);
(b) one Node fetch keep-alive client over http:// and over https:// (Node's own OpenSSL: TLS
    terminated for real by the llmreplay tls-helper process).
Prints µs/request (wall, and for Python the process's CPU time: client plus in-process
responder) and the HTTPS/HTTP ratios (goal for Python keep-alive: <= 1.10). With valgrind
installed (BENCH_TLS_CALLGRIND=0 skips it, about a minute), also the instructions per keep-alive
request, counted by callgrind: the one figure the load of other sessions cannot move. Client and
responder run pinned to one CPU (BENCH_PIN_CPU, default 0; empty: unpinned), as in section 3:
a ping-pong between two CPUs of this VM varies 2-5x from run to run.

usage: bench_tls.py LIB CLI SEED_JSON [N]   (run by scripts/bench.sh)"""
import json, os, shutil, statistics, subprocess, sys, tempfile
from bench_common import node_fetch

LIB, CLI, SEED = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
ROUNDS = int(os.environ.get("BENCH_TLS_ROUNDS", "5"))
PY = "/usr/bin/python3"

PY_CLIENT = r'''
import http.client, json, resource, ssl, sys, time
scheme, path, body, n, fresh = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
ctx = ssl.create_default_context()
def conn():
    if scheme == "https":
        return http.client.HTTPSConnection("api.openai.com", 443, context=ctx)
    return http.client.HTTPConnection("api.openai.com", 80)
c = conn()
def one():
    global c
    if fresh:
        c.close(); c = conn()
    c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse(); d = r.read()
    assert r.status == 200 and len(d) > 1000, (r.status, len(d))
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)  # the client and the in-process responder
    return u.ru_utime + u.ru_stime
for _ in range(min(200, n)): one()
t0, c0 = time.perf_counter(), cpu()
for _ in range(n): one()
print(json.dumps({"us": (time.perf_counter() - t0) / n * 1e6, "cpu": (cpu() - c0) / n * 1e6}))
'''


PIN = ["taskset", "-c", os.environ.get("BENCH_PIN_CPU", "0")] if shutil.which("taskset") and os.environ.get("BENCH_PIN_CPU", "0") else []


def measure(cmd, env):
    r = subprocess.run(PIN + cmd, env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"client failed: {' '.join(cmd[:3])}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def instructions(cmd, env, tmp):
    """Instructions callgrind counts for a run: the same for the same inputs, whatever the load."""
    out = os.path.join(tmp, "cg.out")
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + cmd, env=env,
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"callgrind run failed: {r.stderr[-2000:]}")
    for line in r.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1].strip().replace(",", ""))
    raise SystemExit("callgrind printed no total")


def per_request_instructions(scheme, path, body, env, tmp):
    """(instructions of 200 + 700 requests) - (of 200 + 200): start-up and warm-up cancel out."""
    a = instructions([PY, "-c", PY_CLIENT, scheme, path, body, "200", "0"], env, tmp)
    b = instructions([PY, "-c", PY_CLIENT, scheme, path, body, "700", "0"], env, tmp)
    return (b - a) / 500


def main():
    tmp = tempfile.mkdtemp(prefix="llmreplay-bench-tls-")
    try:
        rec = json.load(open(SEED))
        body = json.dumps(rec["request"]["body"])
        path = "/v1/chat/completions"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMREPLAY_", "NODE_EXTRA_CA", "SSL_CERT"))}
        env.update(LD_PRELOAD=LIB, LLMREPLAY_DIR=os.path.dirname(SEED), LLMREPLAY_CACHE_DIR=os.path.join(tmp, "cache"),
                   LLMREPLAY_HOSTS="api.openai.com:80,api.openai.com:443", LLMREPLAY_LAYERS="sockets,tls",
                   LLMREPLAY_BIN=CLI)  # the library may be a copy, away from the binary
        ca = subprocess.run([CLI, "ca"], env=env, capture_output=True, text=True, check=True).stdout.strip()
        env["NODE_EXTRA_CA_CERTS"] = ca
        cases = {
            "python http, keep-alive": [PY, "-c", PY_CLIENT, "http", path, body, str(N), "0"],
            "python https, keep-alive": [PY, "-c", PY_CLIENT, "https", path, body, str(N), "0"],
            "python http, new connection": [PY, "-c", PY_CLIENT, "http", path, body, str(N // 4), "1"],
            "python https, new connection": [PY, "-c", PY_CLIENT, "https", path, body, str(N // 4), "1"],
        }
        if shutil.which("node"):
            cases["node fetch http, keep-alive"] = node_fetch("http://api.openai.com" + path, body, N)
            cases["node fetch https (terminated)"] = node_fetch("https://api.openai.com" + path, body, N)
        got = {k: [] for k in cases}
        cpu = {k: [] for k in cases}
        for _ in range(ROUNDS):  # interleaved: load from other sessions hits every case alike
            for k, cmd in cases.items():
                m = measure(cmd, env)
                got[k].append(m["us"])
                if "cpu" in m:
                    cpu[k].append(m["cpu"])
        med = {k: statistics.median(v) for k, v in got.items()}
        # each round's ratio: both sides of it ran back to back, under the same load
        ratio = lambda a, b, d=got: statistics.median(x / y for x, y in zip(d[a], d[b]))
        print(f"  seed answer ({len(open(SEED).read())} bytes of recording), {N} requests per run "
              f"({N // 4} with a new connection each), medians of {ROUNDS} interleaved rounds"
              f"{', pinned to CPU ' + PIN[2] if PIN else ''}; ratios: median of the rounds' ratios")
        print(f"  {'client':34} {'us/request':>11}   (min .. max)      {'CPU us/request':>14}")
        for k in cases:
            c = f"{statistics.median(cpu[k]):14.1f}" if cpu[k] else f"{'-':>14}"
            print(f"  {k:34} {med[k]:11.1f}   ({min(got[k]):.1f} .. {max(got[k]):.1f}) {c}")
        pairs = [("python https, keep-alive", "python http, keep-alive", "Python keep-alive HTTPS/HTTP (goal <= 1.10)"),
                 ("python https, new connection", "python http, new connection", "Python new-connection HTTPS/HTTP"),
                 ("node fetch https (terminated)", "node fetch http, keep-alive", "Node fetch terminated-TLS/HTTP")]
        if shutil.which("valgrind") and os.environ.get("BENCH_TLS_CALLGRIND", "1") != "0":
            ih = per_request_instructions("http", path, body, env, tmp)
            it = per_request_instructions("https", path, body, env, tmp)
            print(f"  instructions per request (callgrind, whole process): http {ih:,.0f}, https {it:,.0f}")
            print(f"RATIO Python keep-alive HTTPS/HTTP (goal <= 1.10), instructions = {it / ih:.3f}")
        for a, b, label in pairs:
            if a in med:
                print(f"RATIO {label} = {ratio(a, b):.2f}")
            if cpu.get(a):
                # CPU time of the whole process (client and responder): what the TLS layer costs,
                # without the scheduling delays other sessions' load adds to wall time
                print(f"RATIO {label}, CPU time = {ratio(a, b, cpu):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
