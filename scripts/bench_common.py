"""Pieces the benchmark scripts share (imported by bench_fast.py, bench_proxy.py, bench_sockets.py
and bench_tls.py, which run from this directory)."""
import signal, socket, subprocess

# Node fetch keep-alive: URL, body, N; 200 warm-up requests, then prints {"us": per request}.
NODE_FETCH = r'''
const [url, body, n] = [process.argv[1], process.argv[2], +process.argv[3]];
async function one() {
  const r = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } });
  const t = await r.text();
  if (r.status !== 200 || t.length < 1000) throw new Error(`status ${r.status}`);
}
for (let i = 0; i < Math.min(200, n); i++) await one();
const t0 = performance.now();
for (let i = 0; i < n; i++) await one();
console.log(JSON.stringify({ us: (performance.now() - t0) / n * 1000 }));
'''


def node_fetch(url, body, n):
    return ["node", "--input-type=module", "-e", NODE_FETCH, url, body, str(n)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stop(procs):
    """SIGTERM each, then SIGKILL what has not ended within 5 s."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
