"""Record, record-if-missing, live and trace modes against fake upstreams (tests/fake_upstream.py,
plain HTTP and HTTPS with a test CA): what a client receives while recording is what it receives
when the recording is replayed, with the upstream gone and no network."""
import contextlib, glob, json, os, signal, subprocess, time
from lib import *

UPSTREAM = os.path.join(ROOT, "tests", "fake_upstream.py")
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


def upstream(*args):
    return fake_upstream(*args)


def _ca(tmp):
    """A test CA and a certificate for api.openai.com and localhost, issued by it."""
    ca_key, ca, key, csr, crt = (os.path.join(tmp, n) for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(tmp, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:api.openai.com,DNS:localhost,IP:127.0.0.1\n")
    for cmd in (["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
                 "-subj", "/CN=llmreplay test CA"],
                ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=api.openai.com"],
                ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
                 "-extfile", ext]):
        run(cmd, check=True)
    return ca, crt, key


def _env(rec, mode, **extra):
    return shim_env(rec, LLMREPLAY_MODE=mode, LLMREPLAY_LOG="warn", **extra)


def _curl(url, body, env, extra=()):
    args = ["curl", "-sS", "-i", url] + list(extra)
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    return run(args, env=env, timeout=60)


def _unshare():
    return unshare()


def _strip_date(head):
    return b"\r\n".join(l for l in head.split(b"\r\n") if not l.lower().startswith((b"date:", b"server:", b"x-llmreplay")))


def test_seed_file_name_reproduced_over_https():
    """Recording the seed's request, with its test id, against https://api.openai.com (a fake one
    with a test CA) writes a file with the seed's own name: llama-stack's hash."""
    tmp = tmpdir()
    try:
        ca, crt, key = _ca(tmp)
        seed = load(SEED)
        rec = os.path.join(tmp, "rec")
        os.makedirs(rec)
        with upstream("--tls", crt, key) as port:
            r = run(["curl", "-sS", "--cacert", ca, "--resolve", f"api.openai.com:{port}:127.0.0.1",
                     f"https://api.openai.com:{port}/v1/chat/completions", "-H", "Authorization: Bearer sk-live-KEY42",
                     "-d", json.dumps(seed["request"]["body"])], env=_env(rec, "record", LLMREPLAY_TEST_ID=seed["test_id"]))
            assert r.returncode == 0, r.stderr
        assert os.listdir(rec) == [os.path.basename(SEED)], os.listdir(rec)
        written = load(os.path.join(rec, os.path.basename(SEED)))
        assert written["request"]["url"] == f"https://api.openai.com:{port}/v1/v1/chat/completions"
        assert written["test_id"] == seed["test_id"] and written["response"]["is_streaming"] is True
        assert b"KEY42" not in open(os.path.join(rec, os.path.basename(SEED)), "rb").read()
    finally:
        rmtree(tmp)


CASES = [
    ("POST", "/v1/chat/completions", dict(CHAT, stream=True)),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "rate limit me"}]}),
    ("GET", "/v1/models", None),
    ("POST", "/api/generate", {"model": "llama", "prompt": "why", "stream": True}),
]


def _through_curl(port, env, unshare=()):
    outs = []
    for method, path, body in CASES:
        r = run(list(unshare) + ["curl", "-sS", "-i", f"http://127.0.0.1:{port}{path}"] +
                (["-H", "Content-Type: application/json", "-d", json.dumps(body)] if body is not None else []),
                env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        head, _, payload = r.stdout.partition(b"\r\n\r\n")
        outs.append((head.split(b"\r\n")[0], payload))
    return outs


def test_record_then_replay_curl_cli_and_c_program():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        with upstream() as port:
            live = _through_curl(port, _env(rec, "record"))
            # the C program records too (easy interface), one more request
            jobs = os.path.join(tmp, "jobs")
            bf = os.path.join(tmp, "b")
            with open(bf, "w") as f:
                json.dump(dict(CHAT, messages=[{"role": "user", "content": "from C"}], stream=True), f)
            with open(jobs, "w") as f:
                f.write(f"POST\thttp://127.0.0.1:{port}/v1/chat/completions\t{bf}\t{os.path.join(tmp, 'c.live')}\n")
            run([os.path.join(TESTS, "replay_client"), "easy", jobs], env=_env(rec, "record"), check=True)
        files = glob.glob(os.path.join(rec, "*.json"))
        assert len(files) == len(CASES) + 1, files
        assert [f for f in files if os.path.basename(f).startswith("models-")], files
        assert run([CLI, "check", rec], env=shim_env(None, LD_PRELOAD=None)).returncode == 0
        # upstream gone, no network: the same bytes
        replayed = _through_curl(port, _env(rec, "replay"), _unshare())
        assert replayed == live, [(a[0], b[0]) for a, b in zip(live, replayed) if a != b]
        assert live[2][0].startswith(b"HTTP/1.1 429"), live[2][0]
        with open(jobs, "w") as f:
            f.write(f"POST\thttp://127.0.0.1:{port}/v1/chat/completions\t{bf}\t{os.path.join(tmp, 'c.replay')}\n")
        run(_unshare() + [os.path.join(TESTS, "replay_client"), "easy", jobs], env=_env(rec, "replay"), check=True)
        strip = lambda p: open(p, "rb").read().rsplit(b"END ", 1)[0]
        assert b"".join(strip(os.path.join(tmp, "c.live")).split(b"\n")[1::2]) == \
            b"".join(strip(os.path.join(tmp, "c.replay")).split(b"\n")[1::2])
    finally:
        rmtree(tmp)


PY_REC = r'''
import sys, json, requests
port, out = sys.argv[1], sys.argv[2]
res = []
s = requests.Session()
for body in ({"model": "m", "messages": [{"role": "user", "content": "py"}], "stream": True},
             {"model": "m", "messages": [{"role": "user", "content": "py plain"}]},
             {"model": "m", "messages": [{"role": "user", "content": "rate limit me"}]}):
    r = s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, stream=True,
               headers={"Authorization": "Bearer sk-py-SECRET9", "x-api-key": "anthropic-SECRET8"})
    res.append([r.status_code, b"".join(r.raw.stream(65536, decode_content=False)).decode()])
json.dump(res, open(out, "w"))
'''

NODE_REC = r'''
const [port, out] = process.argv.slice(2);
const res = [];
for (const body of [{model: "m", messages: [{role: "user", content: "node"}], stream: true}, {model: "m", messages: [{role: "user", content: "node plain"}]}]) {
  const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {method: "POST", body: JSON.stringify(body),
    headers: {"content-type": "application/json", "authorization": "Bearer sk-node-SECRET7"}});
  res.push([r.status, await r.text()]);
}
(await import("node:fs")).writeFileSync(out, JSON.stringify(res));
'''


def test_record_then_replay_python_and_node_through_sockets():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        node_js = os.path.join(tmp, "rec.mjs")
        with open(node_js, "w") as f:
            f.write(NODE_REC)
        with upstream() as port:
            env = _env(rec, "record", LLMREPLAY_HOSTS=f"127.0.0.1:{port}", LLMREPLAY_REDACT="x-api-key")
            run([PY, "-c", PY_REC, str(port), os.path.join(tmp, "py.live")], env=env, check=True)
            run(["node", node_js, str(port), os.path.join(tmp, "node.live")], env=env, check=True)
        assert len(glob.glob(os.path.join(rec, "*.json"))) == 5
        env = _env(rec, "replay", LLMREPLAY_HOSTS=f"127.0.0.1:{port}")
        run(_unshare() + [PY, "-c", PY_REC, str(port), os.path.join(tmp, "py.replay")], env=env, check=True)
        run(_unshare() + ["node", node_js, str(port), os.path.join(tmp, "node.replay")], env=env, check=True)
        for who in ("py", "node"):
            live, rep = (json.load(open(os.path.join(tmp, f"{who}.{k}"))) for k in ("live", "replay"))
            assert live == rep, (who, live, rep)
        # secrets never reach disk
        for f in glob.glob(os.path.join(rec, "*")):
            text = open(f, "rb").read()
            for secret in (b"SECRET9", b"SECRET8", b"SECRET7"):
                assert secret not in text, (f, secret)
    finally:
        rmtree(tmp)


def test_record_if_missing_and_live():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        with upstream() as port:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            first = _curl(url, CHAT, _env(rec, "record-if-missing"))
            assert first.stdout.startswith(b"HTTP/1.1 200") and len(os.listdir(rec)) == 1
            # live: upstream, nothing written
            other = dict(CHAT, messages=[{"role": "user", "content": "live only"}])
            r = _curl(url, other, _env(rec, "live"))
            assert b"live only" in r.stdout and len(os.listdir(rec)) == 1
        # upstream gone: the recorded request replays, a new one is reported, nothing written
        again = _curl(url, CHAT, _env(rec, "record-if-missing"))
        assert again.stdout.split(b"\r\n\r\n", 1)[1] == first.stdout.split(b"\r\n\r\n", 1)[1]
        new = _curl(url, dict(CHAT, messages=[{"role": "user", "content": "never seen"}]), _env(rec, "record-if-missing"))
        assert new.returncode == 7 or b"502" in new.stdout, (new.returncode, new.stdout[:200])
        assert b"nothing recorded" in new.stderr, new.stderr
        assert len(os.listdir(rec)) == 1
    finally:
        rmtree(tmp)


def test_eight_processes_recording_at_once():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        with upstream() as port:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            ps = [subprocess.Popen(["curl", "-sS", url, "-d", json.dumps(dict(CHAT, stream=True))], env=_env(rec, "record"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(8)]
            outs = [p.communicate(timeout=60)[0] for p in ps]
        assert len(set(outs)) == 1 and outs[0].endswith(b"data: [DONE]\n\n")
        assert [f for f in os.listdir(rec)] == [os.listdir(rec)[0]] and len(os.listdir(rec)) == 1, os.listdir(rec)
        r = run(_unshare() + ["curl", "-sS", url, "-d", json.dumps(dict(CHAT, stream=True))], env=_env(rec, "replay"))
        assert r.stdout == outs[0]
    finally:
        rmtree(tmp)


def test_kill_9_mid_stream_leaves_no_recording():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        with upstream("--delay-ms", "300") as port:
            p = subprocess.Popen(["curl", "-sSN", f"http://127.0.0.1:{port}/v1/chat/completions", "-d", json.dumps(dict(CHAT, stream=True))],
                                 env=_env(rec, "record"), stdout=subprocess.PIPE)
            assert p.stdout.readline().startswith(b"data: ")
            p.send_signal(signal.SIGKILL)
            p.wait()
        assert not os.path.exists(rec) or not [f for f in os.listdir(rec) if f.endswith(".json") and not f.startswith(".")]
    finally:
        rmtree(tmp)


def test_unwritable_record_dir_is_reported_and_the_program_gets_its_answer():
    with upstream() as port:
        r = _curl(f"http://127.0.0.1:{port}/v1/chat/completions", CHAT,
                  _env("/proc/llmreplay-nope", "record"))
    assert r.stdout.startswith(b"HTTP/1.1 200") and b"hello there" in r.stdout
    assert b"cannot write the recording" in r.stderr and b"nothing was recorded" in r.stderr, r.stderr


def test_recorded_pacing():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        body = json.dumps(dict(CHAT, stream=True))
        with upstream("--delay-ms", "80") as port:
            run(["curl", "-sS", f"http://127.0.0.1:{port}/v1/chat/completions", "-d", body], env=_env(rec, "record"), check=True)
        times = load(glob.glob(os.path.join(rec, "*.json"))[0])["response"]["chunk_times_ms"]
        assert times[-1] - times[0] >= 80 * (len(times) - 2), times

        def span(**env):
            p = subprocess.Popen(["curl", "-sSN", f"http://127.0.0.1:{port}/v1/chat/completions", "-d", body],
                                 env=_env(rec, "replay", **env), stdout=subprocess.PIPE)
            p.stdout.readline()
            t0 = time.monotonic()
            p.stdout.read()
            p.wait()
            return (time.monotonic() - t0) * 1000
        assert span(LLMREPLAY_PACE="recorded") >= 0.7 * (times[-1] - times[0])
        assert span() < 0.5 * (times[-1] - times[0])
    finally:
        rmtree(tmp)


def test_normalize_option():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        with upstream() as port:
            run(["curl", "-sS", f"http://127.0.0.1:{port}/v1/chat/completions", "-d", json.dumps(CHAT)],
                env=_env(rec, "record", LLMREPLAY_NORMALIZE=1), check=True)
        d = load(glob.glob(os.path.join(rec, "*.json"))[0])["response"]["body"]["__data__"]
        assert d["id"].startswith("rec-") and d["created"] == 0, d
    finally:
        rmtree(tmp)


def test_trace_logs_and_summarizes():
    tmp = tmpdir()
    try:
        log = os.path.join(tmp, "t.jsonl")
        with upstream() as port:
            env = shim_env(None, LD_PRELOAD=None)
            r = run([CLI, "trace", "-o", log, "--", "sh", "-c",
                     f"curl -s http://127.0.0.1:{port}/v1/chat/completions -H 'Authorization: Bearer sk-T-SECRET5' "
                     f"-d '{json.dumps(CHAT)}' >/dev/null; curl -s http://127.0.0.1:{port}/v1/models >/dev/null; "
                     f"curl -s http://127.0.0.1:{port}/v1/chat/completions -d '{json.dumps(dict(CHAT, stream=True))}' >/dev/null"],
                    env=env, check=True)
        lines = [json.loads(l) for l in open(log)]
        assert len(lines) == 3, lines
        assert lines[0]["request_headers"]["Authorization"] == "[REDACTED]" and b"SECRET5" not in open(log, "rb").read()
        assert lines[0]["status"] == 200 and lines[0]["response"]["usage"]["total_tokens"] == 10
        assert len(lines[2]["events"]) == 5
        table = r.stderr.decode()
        assert "llmreplay trace: 3 exchanges, 0 errors" in table and f"127.0.0.1:{port}" in table, table
        row = next(l for l in table.splitlines() if l.startswith("/v1/chat/completions m"))
        assert row.split()[2:4] == ["2", "0"] and row.split()[-2:] == ["5", "5"], row
    finally:
        rmtree(tmp)


def test_slow_first_byte_is_still_a_stream_for_the_client():
    """Recording through the socket layer: the client gets each piece as it arrives upstream."""
    code = r'''
import requests, sys, time
t0 = time.monotonic()
r = requests.post(sys.argv[1], json={"model": "m", "messages": [{"role": "user", "content": "slow first byte"}], "stream": True}, stream=True)
times = [time.monotonic() - t0 for _ in r.iter_lines() if _]
print(times[0], times[-1])
'''
    tmp = tmpdir()
    try:
        with upstream("--delay-ms", "100") as port:
            r = run([PY, "-c", code, f"http://127.0.0.1:{port}/v1/chat/completions"],
                    env=_env(os.path.join(tmp, "rec"), "record", LLMREPLAY_HOSTS=f"127.0.0.1:{port}"), check=True)
        first, last = map(float, r.stdout.split())
        assert first >= 0.45 and last - first >= 0.3, (first, last)  # the 0.5 s wait, then events over time
        assert len(glob.glob(os.path.join(tmp, "rec", "*.json"))) == 1
    finally:
        rmtree(tmp)
