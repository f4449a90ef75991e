#!/usr/bin/python3
"""Proxy/serve path speed: one Go net/http client (tests/go/client.go, keep-alive, one
connection) POSTing the seed request N times to (a) `llmreplay serve` as a base URL (plain
HTTP), (b) the same server as an HTTPS proxy (one CONNECT, TLS terminated by llmreplay's helper,
as for a Go program under `llmreplay run`), and to nginx serving the same bytes from a file over
(c) HTTP and (d) HTTPS (a self-signed certificate). Interleaved rounds, medians, ratios.

usage: bench_proxy.py CLI SEED_JSON [N] [ROUNDS]   (run by scripts/bench.sh; needs go, nginx optional)"""
import json, os, re, shutil, statistics, subprocess, sys, tempfile, time
from bench_common import free_port, stop

CLI, SEED = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Client and servers on one CPU (BENCH_PIN_CPU, as in bench.sh section 3; empty: unpinned): on
# this VM a ping-pong between two CPUs costs 2-5x more and flips between placements.
PIN_CPU = os.environ.get("BENCH_PIN_CPU", "0")
PIN = ["taskset", "-c", PIN_CPU] if PIN_CPU and shutil.which("taskset") else []


def base_env(tmp):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LLMREPLAY_") and k.upper() not in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY")}
    env.pop("LD_PRELOAD", None)
    env["LLMREPLAY_CACHE_DIR"] = os.path.join(tmp, "cache")
    return env


def build_go(tmp, env):
    go = shutil.which("go")
    if not go:
        raise SystemExit("  (go not installed: apt-get install golang-go to run this section)")
    src = os.path.join(tmp, "go")
    os.makedirs(src)
    shutil.copy(os.path.join(ROOT, "tests", "go", "client.go"), os.path.join(src, "main.go"))
    with open(os.path.join(src, "go.mod"), "w") as f:
        f.write("module bench\ngo 1.19\n")
    e = dict(env, GOCACHE=os.path.join(tmp, "gocache"), GOPATH=os.path.join(tmp, "gopath"), CGO_ENABLED="0", HOME=tmp)
    subprocess.run([go, "build", "-o", os.path.join(tmp, "client"), "main.go"], cwd=src, env=e, check=True)
    return os.path.join(tmp, "client")


def nginx_start(tmp, answer, env):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        return None, None, None
    crt, key = os.path.join(tmp, "ng.crt"), os.path.join(tmp, "ng.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    hp, sp = free_port(), free_port()
    conf = os.path.join(tmp, "nginx.conf")
    loc = f"""location = /v1/chat/completions {{ default_type "text/event-stream; charset=utf-8"; alias {answer};
      error_page 405 =200 $uri; }}"""
    with open(conf, "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/err.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp}; keepalive_requests 1000000; keepalive_timeout 120s;
  server {{ listen 127.0.0.1:{hp}; {loc} }}
  server {{ listen 127.0.0.1:{sp} ssl; ssl_certificate {crt}; ssl_certificate_key {key}; {loc} }} }}
""")
    p = subprocess.Popen(PIN + [nginx, "-c", conf, "-p", tmp], env=env, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return p, (hp, sp), crt


def measure(client, body_file, env):
    r = subprocess.run(PIN + [client, body_file, "custom", str(N + 1)], env=env, capture_output=True, text=True, timeout=600)
    m = re.search(r"per_request_us ([0-9.]+)", r.stderr)
    if r.returncode != 0 or not m or "status 200" not in r.stdout:
        raise SystemExit(f"  !! Go client failed: {r.stderr[-1500:]}")
    return float(m.group(1))


def main():
    tmp = tempfile.mkdtemp(prefix="llmreplay-bench-proxy-")
    os.chmod(tmp, 0o755)  # nginx may read files here as another user
    procs = []
    try:
        env = base_env(tmp)
        client = build_go(tmp, env)
        body_file = os.path.join(tmp, "body.json")
        with open(body_file, "w") as f:
            json.dump(json.load(open(SEED))["request"]["body"], f)
        srv = subprocess.Popen(PIN + [CLI, "serve", "-d", os.path.dirname(SEED), "--listen", "127.0.0.1:0"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(srv)
        addr = re.search(r"http://([0-9.]+:[0-9]+)", srv.stdout.readline().decode()).group(1)
        ca_bundle = subprocess.run([CLI, "ca", "--bundle"], env=env, capture_output=True, text=True, check=True).stdout.strip()
        answer = os.path.join(tmp, "answer.sse")
        with open(answer, "wb") as f:
            f.write(subprocess.run(["curl", "-s", f"http://{addr}/v1/chat/completions", "-d", f"@{body_file}"],
                                   capture_output=True, check=True).stdout)
        os.chmod(answer, 0o644)
        cases = {
            "serve, base URL (http)": dict(env, URL=f"http://{addr}/v1/chat/completions"),
            "serve as HTTPS proxy (CONNECT + TLS)": dict(env, HTTPS_PROXY=f"http://{addr}", SSL_CERT_FILE=ca_bundle),
        }
        ng, ports, crt = nginx_start(tmp, answer, env)
        if ng:
            procs.append(ng)
            cases["nginx, http"] = dict(env, URL=f"http://127.0.0.1:{ports[0]}/v1/chat/completions")
            cases["nginx, https"] = dict(env, URL=f"https://127.0.0.1:{ports[1]}/v1/chat/completions", SSL_CERT_FILE=crt)
        else:
            print("  (nginx not installed: apt-get install nginx to compare with it)")
        res = {k: [] for k in cases}
        names = list(cases)
        for r in range(ROUNDS):
            for j in range(len(names)):
                name = names[(j + r) % len(names)]
                res[name].append(measure(client, body_file, cases[name]))
        med = {k: statistics.median(v) for k, v in res.items()}
        size = os.path.getsize(answer)
        print(f"  one Go net/http client, keep-alive, {N} POSTs of the seed request ({size} bytes of SSE back) per run,"
              f" {ROUNDS} interleaved rounds, medians" + (f"; all on CPU {PIN_CPU}" if PIN else ""))
        print(f"  {'answered by':40} {'us/request':>11} {'requests/s':>11}")
        for name in names:
            print(f"  {name:40} {med[name]:11.1f} {1e6 / med[name]:11.0f}")
        if ng:
            print(f"RATIO nginx http / serve http = {med['nginx, http'] / med['serve, base URL (http)']:.2f}")
            print(f"RATIO nginx https / serve https proxy = {med['nginx, https'] / med['serve as HTTPS proxy (CONNECT + TLS)']:.2f}")
    finally:
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
