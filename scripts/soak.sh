#!/bin/sh
# Soak test (bounded: SOAK_S seconds, default 300). Mixed real clients replay without network
# (inside unshare -rn when allowed) over every layer at once, and two long-lived hosts are
# sampled for growth:
#   - a Python host: requests keep-alive over sockets and hooked TLS, a new http.client
#     connection per request (plain and TLS), pycurl (libcurl layer), repeated and distinct
#     misses, and a fork() every 25 rounds whose child replays at once;
#   - a Node host: fetch keep-alive over sockets and terminated TLS, http/https with a new
#     connection per request, misses;
#   - short-lived clients in a loop: the curl CLI through the libcurl layer (paced 2 ms) and,
#     with that layer off, through sockets and hooked TLS; Python and Node paced (5 ms) streams;
#     the C fork_busy program.
# Every answer is checked (status and bytes, or the miss message). The hosts' descriptor count
# and RSS are sampled every second; after a warm-up (a quarter of the run, at most 60 s) the
# run fails if descriptors grow by more than SOAK_FD_GROWTH (default 4) or RSS by more than
# SOAK_RSS_GROWTH_MB (default 16 for Python, twice that for Node, whose heap moves in steps).
# Prints one summary line per host and per client kind; exits 1 on any wrong answer or growth.
set -eu
cd "$(dirname "$0")/.."
make -s --no-print-directory all build/tests/fork_busy
exec /usr/bin/python3 - <<'PY'
import json, os, shutil, subprocess, sys, tempfile, threading, time
sys.path.insert(0, "tests")
from lib import LIB, CLI, TESTS, SEED, SEED_DIR, EXAMPLES, PY, expected, load, request_body, shim_env

S = float(os.environ.get("SOAK_S", "300"))
FD_GROWTH = int(os.environ.get("SOAK_FD_GROWTH", "4"))
RSS_GROWTH = float(os.environ.get("SOAK_RSS_GROWTH_MB", "16"))
WARM = min(60.0, S / 4)
T = tempfile.mkdtemp(prefix="llmreplay-soak-")
UNSHARE = ["unshare", "-rn"] if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0 else []


def case(path, url):
    rec = load(path)
    status, _, evs = expected(rec)
    return {"url": url, "body": request_body(rec), "status": status,
            "want": None if None in evs else "".join(evs)}


OA = "api.openai.com"
CASES = [case(SEED, f"http://{OA}/v1/chat/completions"),
         case(os.path.join(EXAMPLES, "openai-chat.json"), f"http://{OA}/v1/chat/completions"),
         case(os.path.join(EXAMPLES, "responses-stream.json"), f"http://{OA}/v1/responses"),
         case(os.path.join(EXAMPLES, "openai-rate-limit.json"), f"http://{OA}/v1/chat/completions"),
         case(os.path.join(EXAMPLES, "ollama-chat.json"), "http://localhost:11434/api/chat")]
with open(os.path.join(T, "cases.json"), "w") as f:
    json.dump(CASES, f)
env = shim_env([SEED_DIR, EXAMPLES], LLMREPLAY_CACHE_DIR=os.path.join(T, "cache"), LLMREPLAY_LOG="error")
env["NODE_EXTRA_CA_CERTS"] = subprocess.run([CLI, "ca"], env=env, capture_output=True, text=True, check=True).stdout.strip()
DEADLINE = time.time() + S

PY_HOST = r'''
import http.client, io, json, os, sys, time, pycurl, requests
cases, deadline = json.load(open(sys.argv[1])), float(sys.argv[2])
n, errors, s = 0, [], requests.Session()
def check(how, c, status, body):
    global n
    n += 1
    if status != c["status"] or (c["want"] is not None and body != c["want"].encode()):
        errors.append(f"{how} {c['url']}: {status} {body[:80]!r}")
def fresh(c, tls):
    u = c["url"].split("/", 3)
    host, port = (u[2].split(":") + [None])[:2]
    k = http.client.HTTPSConnection if tls and not port else http.client.HTTPConnection
    h = k(host, int(port) if port else None, timeout=30)
    h.request("POST", "/" + u[3], body=c["body"], headers={"Content-Type": "application/json", "Connection": "close"})
    r = h.getresponse(); b = r.read(); h.close()
    return r.status, b
def curl(c):
    buf, h = io.BytesIO(), pycurl.Curl()
    h.setopt(pycurl.URL, c["url"]); h.setopt(pycurl.POSTFIELDS, c["body"]); h.setopt(pycurl.WRITEDATA, buf)
    h.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json"]); h.perform()
    st = h.getinfo(pycurl.RESPONSE_CODE); h.close()
    return st, buf.getvalue()
step = ""
def doing(what):
    global step
    step = what
def one_round():
    global n
    for c in cases:
        tls_ok = "11434" not in c["url"]
        for url in [c["url"]] + ([c["url"].replace("http://", "https://")] if tls_ok else []):
            doing(f"requests {url}")
            r = s.post(url, data=c["body"], headers={"Content-Type": "application/json"}, timeout=30)
            check("requests", dict(c, url=url), r.status_code, r.content)
        doing(f"http.client {c['url']}")
        check("http.client", c, *fresh(c, False))
        if tls_ok:
            doing(f"https.client {c['url']}")
            check("https.client", c, *fresh(dict(c, url=c["url"].replace("http://", "https://")), True))
        doing(f"pycurl {c['url']}")
        check("pycurl", c, *curl(c))
    for k in (0, rounds):  # the same miss again, and a new one every round
        body = json.dumps({"model": "soak-miss", "messages": [{"role": "user", "content": f"miss {k}"}]})
        doing(f"miss {k}")
        r = s.post("http://api.openai.com/v1/chat/completions", data=body, timeout=30)
        n += 1
        if r.status_code != 404 or b"no recording matches" not in r.content: errors.append(f"miss: {r.status_code}")
    if rounds % 25 == 0:
        doing("fork")
        pid = os.fork()
        if pid == 0:
            c = dict(cases[0], url=cases[0]["url"].replace("http://", "https://"))
            st, b = fresh(c, True)  # at once, over hooked TLS, with the parent's connections open
            os._exit(0 if st == c["status"] and b == c["want"].encode() else 1)
        _, st = os.waitpid(pid, 0)
        n += 1
        if st != 0: errors.append(f"fork child exited {st}")
rounds, t0 = 0, time.time()
def guarded(how, f, *a):
    """f(*a), an exception counted as a wrong answer that says what was asked and when"""
    try:
        return f(*a)
    except Exception as e:
        errors.append(f"{step}, round {rounds} at {time.time() - t0:.1f} s: {type(e).__name__}: {str(e)[:160]}")
while time.time() < deadline:
    rounds += 1
    guarded("round", one_round)
print(json.dumps({"requests": n, "rounds": rounds, "errors": errors[:5], "nerrors": len(errors)}))
'''

NODE_HOST = r'''
const fs = require("fs"), http = require("http"), https = require("https");
const [casesFile, deadline] = [process.argv[1], Number(process.argv[2])];
const cases = JSON.parse(fs.readFileSync(casesFile));
let n = 0, rounds = 0; const errors = [];
function check(how, c, status, body) {
  n++;
  if (status !== c.status || (c.want !== null && body !== c.want)) errors.push(`${how} ${c.url}: ${status} ${body.slice(0, 80)}`);
}
function fresh(url, body) {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith("https:") ? https : http;
    const rq = mod.request(url, { method: "POST", agent: false, headers: { "content-type": "application/json" } }, (res) => {
      let b = ""; res.setEncoding("utf8"); res.on("data", (d) => (b += d)); res.on("end", () => resolve([res.statusCode, b]));
    });
    rq.on("error", reject); rq.end(body);
  });
}
(async () => {
  while (Date.now() / 1000 < deadline) {
    if (++rounds % 10 === 0) global.gc(); /* RSS then shows what is retained, not V8's lazy heap */
    for (const c of cases) {
      const urls = [c.url].concat(c.url.includes("11434") ? [] : [c.url.replace("http://", "https://")]);
      for (const url of urls) {
        const r = await fetch(url, { method: "POST", body: c.body, headers: { "content-type": "application/json" } });
        check("fetch", { ...c, url }, r.status, await r.text());
        check("http", { ...c, url }, ...(await fresh(url, c.body)));
      }
    }
    for (const k of [0, rounds]) {
      const body = JSON.stringify({ model: "soak-miss", messages: [{ role: "user", content: `node miss ${k}` }] });
      const r = await fetch("https://api.openai.com/v1/chat/completions", { method: "POST", body });
      const t = await r.text(); n++;
      if (r.status !== 404 || !t.includes("no recording matches")) errors.push(`miss: ${r.status}`);
    }
  }
  console.log(JSON.stringify({ requests: n, rounds, errors: errors.slice(0, 5), nerrors: errors.length }));
})();
'''


def sample(pid):
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")) / 1024
        return fds, rss
    except (OSError, StopIteration):
        return None


# stderr to files: a pipe nobody reads during the run fills up with miss messages
errf = {k: open(os.path.join(T, k + ".err"), "w+b") for k in ("python", "node")}
hosts = {"python": subprocess.Popen(UNSHARE + [PY, "-c", PY_HOST, os.path.join(T, "cases.json"), str(DEADLINE)], env=env,
                                    stdout=subprocess.PIPE, stderr=errf["python"]),
         "node": subprocess.Popen(UNSHARE + ["node", "--expose-gc", "-e", NODE_HOST, os.path.join(T, "cases.json"), str(DEADLINE)],
                                  env=env, stdout=subprocess.PIPE, stderr=errf["node"])}
samples = {k: [] for k in hosts}
t0 = time.time()


def sampler():
    while any(p.poll() is None for p in hosts.values()):
        for k, p in hosts.items():
            s = sample(p.pid)
            if s and p.poll() is None:
                samples[k].append((time.time() - t0,) + s)
        time.sleep(1)


th = threading.Thread(target=sampler, daemon=True)
th.start()

# short-lived clients, one after the other, until the deadline
seed = CASES[0]
with open(os.path.join(T, "seed.req"), "w") as f:
    f.write(seed["body"])
short = {"curl-libcurl-paced": 0, "curl-sockets-tls": 0, "python-paced-tls": 0, "node-paced": 0, "fork_busy": 0}
short_err = []
PACED_PY = ("import json,sys,urllib.request as u;c=json.load(open(sys.argv[1]))[0];"
            "r=u.urlopen(u.Request(c['url'].replace('http:','https:'),c['body'].encode(),{'Content-Type':'application/json'}));"
            "sys.exit(0 if r.read()==c['want'].encode() else 1)")
PACED_NODE = ("const c=JSON.parse(require('fs').readFileSync(process.argv[1]))[0];"
              "fetch(c.url,{method:'POST',body:c.body}).then(r=>r.text()).then(t=>process.exit(t===c.want?0:1))")
loops = 0
while time.time() < DEADLINE - 2:
    loops += 1
    runs = [("curl-libcurl-paced", ["curl", "-sS", seed["url"], "-d", "@" + os.path.join(T, "seed.req")], {"LLMREPLAY_PACE_MS": "2"}),
            ("curl-sockets-tls", ["curl", "-sS", seed["url"].replace("http:", "https:"), "-d", "@" + os.path.join(T, "seed.req")],
             {"LLMREPLAY_LAYERS": "sockets,tls"}),
            ("python-paced-tls", [PY, "-c", PACED_PY, os.path.join(T, "cases.json")], {"LLMREPLAY_PACE_MS": "5"}),
            ("node-paced", ["node", "-e", PACED_NODE, os.path.join(T, "cases.json")], {"LLMREPLAY_PACE_MS": "5"})]
    if loops % 5 == 1:
        runs.append(("fork_busy", [os.path.join(TESTS, "fork_busy"), os.path.join(T, "seed.req")], {}))
    for name, cmd, extra in runs:
        r = subprocess.run(UNSHARE + cmd, env=dict(env, **extra), capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        short[name] += 1
        ok = r.returncode == 0 and (not name.startswith("curl") or r.stdout == seed["want"].encode())
        if not ok:
            short_err.append(f"{name}: exit {r.returncode} {r.stderr[-200:]!r}")

failed = False
for k, p in hosts.items():
    try:
        out, _ = p.communicate(timeout=S + 120)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        print(f"soak: {k} host did not finish (a stall)")
        failed = True
    errf[k].seek(0)
    err = errf[k].read()
    th.join(timeout=5)
    try:
        res = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"requests": 0, "nerrors": 1, "errors": [err.decode(errors="replace")[-300:]]}
    sm = samples[k]
    base = [s for s in sm if s[0] >= WARM][:5] or sm[:1]
    tail = sm[-5:]
    if not base or not tail:
        print(f"soak: {k}: no samples")
        failed = True
        continue
    fd0, fd1 = max(s[1] for s in base), max(s[1] for s in tail)
    rss0, rss1 = min(s[2] for s in base), min(s[2] for s in tail)
    bound = RSS_GROWTH * (2 if k == "node" else 1)
    grew = fd1 - fd0 > FD_GROWTH or rss1 - rss0 > bound
    print(f"soak: {k} host: {res['requests']} answers in {res.get('rounds')} rounds, {res['nerrors']} wrong; "
          f"descriptors {fd0} -> {fd1} (peak {max(s[1] for s in sm)}); RSS {rss0:.1f} -> {rss1:.1f} MB "
          f"(peak {max(s[2] for s in sm):.1f}, bound +{bound:g}); {len(sm)} samples" + ("  GREW" if grew else ""))
    for e in res["errors"]:
        print(f"soak:   {k}: {e}")
    failed |= grew or res["nerrors"] > 0 or p.returncode != 0
print("soak: short-lived clients: " + ", ".join(f"{k} {v}" for k, v in short.items()) + f"; {len(short_err)} failed")
for e in short_err[:5]:
    print(f"soak:   {e}")
failed |= bool(short_err)
shutil.rmtree(T, ignore_errors=True)
print(f"soak: {'FAILED' if failed else 'ok'} ({S:g} s)")
sys.exit(1 if failed else 0)
PY
