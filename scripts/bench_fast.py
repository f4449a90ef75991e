#!/usr/bin/python3
"""Socket-layer replay answered in the caller's thread (issue 18), all in one run:
(a) Python http.client keep-alive over http and over hooked https, and Node fetch keep-alive,
    each against the shim and against nginx serving the same bytes (POST, keep-alive; https with
    a self-signed certificate the client trusts): wall time per request (medians of interleaved
    rounds, the ratio of each round's pair), twice: with client and nginx free to run on any
    core (as a test suite runs), and both pinned to one core (nginx then needs no cross-core
    wake-up); beside them the client's own floor: http.client parsing the shim's very answer
    from a socketpair written in its own thread, no server at all. With valgrind, instructions
    per request counted by callgrind: for the shim the whole client process (responder
    included), for nginx the client plus nginx itself (run under callgrind too);
(b) what the write hooks cost a program that never talks to an LLM: a million 64-byte writes
    to a pipe (scripts/bench_write.c), and /bin/true, with and without the shim preloaded.
Instruction counts are the figure the load of other sessions cannot move; wall times on this
shared machine vary from run to run (ranges are printed).

usage: bench_fast.py LIB CLI SEED_JSON BENCH_WRITE [N]   (run by scripts/bench.sh)
knobs: BENCH_FAST_ROUNDS=5  BENCH_FAST_CALLGRIND=0 (skip the counts)  BENCH_PIN_CPU=0 (the core of the pinned runs;
       empty: no pinned runs)"""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
from bench_common import free_port, node_fetch

LIB, CLI, SEED, WRITER = sys.argv[1:5]
N = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
ROUNDS = int(os.environ.get("BENCH_FAST_ROUNDS", "5"))
CALLGRIND = shutil.which("valgrind") and os.environ.get("BENCH_FAST_CALLGRIND", "1") != "0"
PY = "/usr/bin/python3"
PATH = "/v1/chat/completions"
PIN_CPU = os.environ.get("BENCH_PIN_CPU", "0") if shutil.which("taskset") else ""

PY_CLIENT = r'''
import http.client, json, ssl, sys, time
scheme, host, port, path, body, n, cafile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
if scheme == "https":
    ctx = ssl.create_default_context(cafile=cafile or None)
    c = http.client.HTTPSConnection(host, port, context=ctx)
else:
    c = http.client.HTTPConnection(host, port)
if scheme == "floor":  # no server: each answer (the file named by the last argument) is written into
    import socket      # a socketpair by the client's own thread; its two Python calls stay in: an upper bound
    answer, (c.sock, peer) = open(cafile, "rb").read(), socket.socketpair()
def one():
    c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    if scheme == "floor": peer.recv(65536); peer.sendall(answer)
    r = c.getresponse(); d = r.read()
    assert r.status == 200 and len(d) > 1000, (r.status, len(d))
for _ in range(min(200, n)): one()
t0 = time.perf_counter()
for _ in range(n): one()
print(json.dumps({"us": (time.perf_counter() - t0) / n * 1e6}))
'''


def measure(cmd, env, pin=""):
    r = subprocess.run((["taskset", "-c", pin] if pin else []) + cmd, env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"client failed: {' '.join(cmd[:4])}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def collected(stderr):
    for line in stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1].strip().replace(",", ""))
    raise SystemExit("callgrind printed no total: " + stderr[-1500:])


def instructions(cmd, env, tmp, only=None):
    out = os.path.join(tmp, "cg.%p.out")
    opt = ["--toggle-collect=" + only] if only else []  # count inside that function only
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + opt + cmd, env=env,
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"callgrind run failed: {r.stderr[-2000:]}")
    return collected(r.stderr)


class Nginx:
    """nginx on 127.0.0.1: POST to PATH returns the answer file, over http and https."""

    def __init__(self, tmp, answer, cert, key, env, callgrind=False, pin=""):
        self.tmp, self.env = tmp, env
        self.http, self.https = free_port(), free_port()
        d = os.path.join(tmp, "nginx")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/err.log warn;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d}; keepalive_requests 1000000; keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{self.http}; listen 127.0.0.1:{self.https} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key};
    location = {PATH} {{ default_type "text/event-stream; charset=utf-8"; alias {answer}; error_page 405 =200 $uri; }} }} }}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        cmd = [nginx, "-c", conf, "-p", d]
        if callgrind:
            cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(tmp, "cg-nginx.%p.out")] + cmd
        self.p = subprocess.Popen((["taskset", "-c", pin] if pin and not callgrind else []) + cmd, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(600 if callgrind else 100):
            try:
                socket.create_connection(("127.0.0.1", self.http), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.https), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("nginx did not start: " + open(os.path.join(d, "err.log")).read()[-1000:])

    def stop(self):
        self.p.send_signal(signal.SIGQUIT)
        try:
            _, err = self.p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            _, err = self.p.communicate()
        return err


def per_request(cmd_of, env, tmp, nginx_args=None, only=None):
    """Instructions of (200 warm-up + 700) requests minus (200 + 200): start-up cancels out. With
    nginx_args, nginx runs under callgrind too and its count is added; with only, the count is
    of that function (and what it calls) alone."""
    totals = []
    for n in (200, 700):
        ng = Nginx(*nginx_args, callgrind=True) if nginx_args else None
        try:
            c = instructions(cmd_of(n, ng), env, tmp, only)
        finally:
            s = collected(ng.stop()) if ng else 0
        totals.append(c + s)
    return (totals[1] - totals[0]) / 500


def self_signed(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def clients(body, cert, ng):
    """name -> (shim command, nginx command), each a function of the request count."""
    def py(scheme, host, port, ca):
        return lambda n, ng=None: [PY, "-c", PY_CLIENT, scheme, host, str(port if ng is None else (ng.http if scheme == "http" else ng.https)), PATH, body, str(n), ca]
    c = {"python http.client http": (py("http", "api.openai.com", 80, ""), py("http", "127.0.0.1", ng.http, "")),
         "python http.client https": (py("https", "api.openai.com", 443, ""), py("https", "localhost", ng.https, cert))}
    if shutil.which("node"):
        def node(url_of):
            return lambda n, g=None: node_fetch(url_of(g), body, n)
        c["node fetch http"] = (node(lambda g: "http://api.openai.com" + PATH),
                                node(lambda g: f"http://127.0.0.1:{(g or ng).http}{PATH}"))
    return c


RAW_ANSWER = r'''
import socket, sys
body, path, out = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3]
s = socket.create_connection(("api.openai.com", 80))
s.sendall(b"POST %s HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
          % (path, len(body)) + body)
d = b""
while not d.endswith(b"\r\n0\r\n\r\n"):
    k = s.recv(65536)
    assert k, d[:300]
    d += k
open(out, "wb").write(d)
'''


def raw_answer(path, body, env):
    """The shim's answer to the seed request as it goes on the wire (head and chunks)."""
    subprocess.run([PY, "-c", RAW_ANSWER, body, PATH, path], env=env, check=True, timeout=60)


def wall_rounds(cases, ng, shim_env, plain, floor, pin):
    wall = {k: ([], []) for k in cases}
    floors = []
    for _ in range(ROUNDS):  # interleaved: other sessions' load hits both sides alike
        floors.append(measure(floor(N), plain, pin)["us"])
        for k, (s, g) in cases.items():
            wall[k][0].append(measure(s(N), shim_env, pin)["us"])
            wall[k][1].append(measure(g(N, ng), plain, pin)["us"])
    return wall, floors


def wall_report(wall, floors, label):
    goals = {"python http.client http": 0.35, "python http.client https": 0.35, "node fetch http": 0.5}
    print(f"  {label}:")
    print(f"  {'client':26} {'shim us/req (range)':>24} {'nginx us/req (range)':>24} {'shim/nginx':>10}  goal")
    for k, (s, g) in wall.items():
        r = [a / b for a, b in zip(s, g)]
        ratio = statistics.median(r)
        print(f"  {k:26} {statistics.median(s):8.1f} ({min(s):6.1f}..{max(s):6.1f}) {statistics.median(g):8.1f} "
              f"({min(g):6.1f}..{max(g):6.1f}) {ratio:9.2f}x  <= {goals[k]}")
        print(f"RATIO {k}, shim/nginx wall, {label} (goal <= {goals[k]}) = {ratio:.2f} (rounds {min(r):.2f}..{max(r):.2f})")
    f, s = statistics.median(floors), wall["python http.client http"][0]
    fr = statistics.median(a / b for a, b in zip(s, floors))
    print(f"  {'client floor, http':26} {f:8.1f} ({min(floors):6.1f}..{max(floors):6.1f})   http.client alone, the same bytes from a"
          f" socketpair: shim/floor {fr:.2f}x, the best any server could do is {statistics.median(floors[i] / wall['python http.client http'][1][i] for i in range(len(floors))):.2f}x nginx")
    print(f"RATIO python http.client http, shim/client floor, {label} = {fr:.2f}")


def request_section(tmp, body, shim_env, plain):
    cert, key = self_signed(tmp)
    answer = os.path.join(tmp, "answer.sse")
    r = subprocess.run(["curl", "-sS", "--fail", "http://api.openai.com" + PATH, "-d", body, "-o", answer], env=shim_env, capture_output=True)
    if r.returncode != 0:
        raise SystemExit("replaying the seed with curl failed: " + r.stderr.decode()[-500:])
    wire = os.path.join(tmp, "answer.http")
    raw_answer(wire, body, shim_env)
    floor = lambda n: [PY, "-c", PY_CLIENT, "floor", "localhost", "80", PATH, body, str(n), wire]
    print(f"  seed answer ({os.path.getsize(answer)} bytes; {os.path.getsize(wire)} on the wire, one HTTP chunk),"
          f" {N} keep-alive requests per run, {ROUNDS} interleaved rounds")
    for pin, label in (("", "any core"), (PIN_CPU, f"client and server pinned to CPU {PIN_CPU}")):
        if label != "any core" and not pin:
            continue
        ng = Nginx(tmp, answer, cert, key, plain, pin=pin)
        try:
            cases = clients(body, cert, ng)
            wall, floors = wall_rounds(cases, ng, shim_env, plain, floor, pin)
        finally:
            ng.stop()
        wall_report(wall, floors, label)
    if not CALLGRIND:
        return
    print("  instructions per request (callgrind; shim: the client process with its responder; nginx: client + nginx;"
          " the shim's own: inside lr_inline_write, where the caller's thread answers)")
    for k, (s, g) in cases.items():
        si = per_request(s, shim_env, tmp)
        own = per_request(s, shim_env, tmp, only="lr_inline_write")
        gi = per_request(g, plain, tmp, (tmp, answer, cert, key, plain))
        print(f"  {k:26} shim {si:12,.0f}   nginx {gi:12,.0f}   shim/nginx {si / gi:.2f}   the shim's own {own:8,.0f}"
              f" ({own / si:.1%} of the shim run)")
        print(f"RATIO {k}, shim/nginx instructions = {si / gi:.2f}")


def write_section(tmp):
    plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("LLMREPLAY_")}
    shim = dict(plain, LD_PRELOAD=LIB)
    ns = {"without": [], "with": []}
    for _ in range(ROUNDS * 2):
        for k, env in (("without", plain), ("with", shim)):
            ns[k].append(measure([WRITER, "1000000"], env)["ns"])
    ratio = [b / a for a, b in zip(ns["without"], ns["with"])]
    print(f"  1,000,000 64-byte writes to a pipe (scripts/bench_write.c), {ROUNDS * 2} interleaved rounds:"
          f" without {statistics.median(ns['without']):.0f} ns/write ({min(ns['without']):.0f}..{max(ns['without']):.0f}),"
          f" with the shim {statistics.median(ns['with']):.0f} ({min(ns['with']):.0f}..{max(ns['with']):.0f}),"
          f" ratio {statistics.median(ratio):.3f} (rounds {min(ratio):.2f}..{max(ratio):.2f}; goal <= 1.02)")
    if CALLGRIND:
        # the writing thread only (main: the reader thread's batching varies from run to run)
        i = {k: [instructions([WRITER, str(n)], env, tmp, "main") for n in (0, 1000000)] for k, env in (("without", plain), ("with", shim))}
        per = {k: (v[1] - v[0]) / 1e6 for k, v in i.items()}
        print(f"  callgrind, user-space instructions per write in the writing thread (the syscall itself is not"
              f" counted): without {per['without']:.1f}, with {per['with']:.1f} (+{per['with'] - per['without']:.1f})")
        t = {k: instructions(["/bin/true"], env, tmp) for k, env in (("without", plain), ("with", shim))}
        print(f"  /bin/true, callgrind instructions: without {t['without']:,}, with {t['with']:,}"
              f" ({t['with'] / t['without']:.2f}x; most of a start-up is the kernel's exec and mmap, which callgrind does not count:"
              f" section 1 times it)")
    print(f"RATIO 1M pipe writes, with/without shim wall (goal <= 1.02) = {statistics.median(ratio):.3f}")


def main():
    tmp = tempfile.mkdtemp(prefix="llmreplay-bench-fast-")
    try:
        rec = json.load(open(SEED))
        body = json.dumps(rec["request"]["body"])
        plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith(("LLMREPLAY_", "SSL_CERT"))}
        shim_env = dict(plain, LD_PRELOAD=LIB, LLMREPLAY_DIR=os.path.dirname(SEED), LLMREPLAY_CACHE_DIR=os.path.join(tmp, "cache"),
                        LLMREPLAY_HOSTS="api.openai.com:80,api.openai.com:443", LLMREPLAY_LAYERS="sockets,tls", LLMREPLAY_BIN=CLI)
        if os.environ.get("BENCH_FAST_ONLY") != "writes":
            request_section(tmp, body, shim_env, plain)
        if os.environ.get("BENCH_FAST_ONLY") != "requests":
            write_section(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
