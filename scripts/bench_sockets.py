#!/usr/bin/python3
"""Socket-layer speed: one Python keep-alive client (http.client) asking for the seed answer
N times from (a) the shim's in-process responder, (b) a local Python HTTP server and (c) nginx
serving the same bytes from a file, all in one run. Prints µs/request, requests/s and ratios.

usage: bench_sockets.py LIB SEED_JSON [N]   (run by scripts/bench.sh; nginx is optional)"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time
from bench_common import free_port, stop

LIB, SEED = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
PY = "/usr/bin/python3"

CLIENT = r'''
import http.client, sys, time, json
host, port, path, body, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
method = "POST" if body else "GET"
c = http.client.HTTPConnection(host, port)
size = None
def one():
    global size
    c.request(method, path, body=body or None, headers={"Content-Type": "application/json"} if body else {})
    r = c.getresponse(); d = r.read()
    assert r.status == 200, r.status
    if size is None: size = len(d)
    assert len(d) == size
for _ in range(min(200, n)): one()
t0 = time.perf_counter()
for _ in range(n): one()
dt = time.perf_counter() - t0
print(json.dumps({"us": dt / n * 1e6, "bytes": size}))
'''


def measure(env, port, path, body, n, rounds=3):
    res = []
    for _ in range(rounds):
        r = subprocess.run([PY, "-c", CLIENT, "127.0.0.1", str(port), path, body, str(n)], env=env,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"client failed: {r.stderr[-2000:]}")
        res.append(json.loads(r.stdout))
    return statistics.median(x["us"] for x in res), res[0]["bytes"]


def main():
    tmp = tempfile.mkdtemp(prefix="llmreplay-bench-sock-")
    procs = []
    try:
        rec = json.load(open(SEED))
        body = json.dumps(rec["request"]["body"])
        shim_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_")}
        env.update(LD_PRELOAD=LIB, LLMREPLAY_DIR=os.path.dirname(SEED), LLMREPLAY_HOSTS=f"127.0.0.1:{shim_port}",
                   LLMREPLAY_CACHE_DIR=os.path.join(tmp, "cache"), LLMREPLAY_LAYERS="sockets")
        shim_us, size = measure(env, shim_port, "/v1/chat/completions", body, N)
        # the same bytes from a file
        answer = subprocess.run(["curl", "-s", f"http://127.0.0.1:{shim_port}/v1/chat/completions", "-d", body],
                                env=env, capture_output=True).stdout
        root = os.path.join(tmp, "www")
        os.makedirs(os.path.join(root, "v1"))
        with open(os.path.join(root, "v1", "answer"), "wb") as f:
            f.write(answer)
        plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        rows = [("shim (in-process responder)", shim_us)]
        # python http.server, keep-alive
        pport = free_port()
        srv = f'''
import http.server, sys
data = open({os.path.join(root, "v1", "answer")!r}, "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "text/event-stream"); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
http.server.ThreadingHTTPServer(("127.0.0.1", {pport}), H).serve_forever()
'''
        procs.append(subprocess.Popen([PY, "-c", srv], env=plain))
        time.sleep(0.5)
        py_us, _ = measure(plain, pport, "/v1/answer", "", max(N // 3, 500))
        rows.append(("python http.server, keep-alive", py_us))
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx:
            nport = free_port()
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/err.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp}; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{nport}; root {root}; default_type text/event-stream; }} }}
""")
            procs.append(subprocess.Popen([nginx, "-c", conf, "-p", tmp], env=plain, stderr=subprocess.DEVNULL))
            time.sleep(0.5)
            ng_us, _ = measure(plain, nport, "/v1/answer", "", N)
            rows.append(("nginx, keep-alive", ng_us))
        else:
            print("  (nginx not installed: apt-get install nginx to compare with it)")
        print(f"  one Python http.client keep-alive connection, {N} requests for the seed answer ({size} bytes), medians of 3 runs")
        print(f"  {'answered by':34} {'us/request':>11} {'requests/s':>11} {'vs shim':>8}")
        for name, us in rows:
            print(f"  {name:34} {us:11.1f} {1e6 / us:11.0f} {us / shim_us:7.2f}x")
        for name, us in rows[1:]:
            print(f"RATIO {name} / shim = {us / shim_us:.2f}")
    finally:
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
