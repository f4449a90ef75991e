"""The TLS layer: HTTPS clients with certificate checks on get recorded answers with no network.
Python (http.client with the default verifying context, requests, httpx, aiohttp) and the curl
CLI go through the SSL_* hooks of the system libssl; Node's built-in OpenSSL cannot be hooked, so
its TLS is terminated for real by `llmreplay tls-helper` with a CA that `llmreplay run` makes
the child trust. Hosts that are not intercepted keep their real, verified TLS."""
import json, os, random, socket, ssl, subprocess, threading
from lib import *
from test_sockets import NODE_DIR, PY_CLIENT, _check, _run_client, _unshare


def https_items():
    """Every corpus recording made over https://, asked of its own host."""
    return [it for it in every_request(corpus_files()) if it[2].startswith("https://")]


def _ca_file(env):
    """The persistent CA (made on first use) that terminated TLS is issued by."""
    r = run([CLI, "ca"], env=env, check=True)
    return r.stdout.decode().strip()


def _fresh_recording(d, host="api.openai.com", words=None):
    """A streamed chat recording written here and now (not in shared/), in llama-stack's format."""
    words = words or [random.choice(["amber", "cobalt", "saffron", "teal"]) + str(random.randrange(10**6)), "is", "fresh"]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say " + words[0]}], "stream": True}
    chunks = [{"__type__": "openai.types.chat.chat_completion_chunk.ChatCompletionChunk",
               "__data__": {"id": "chatcmpl-fresh", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                            "choices": [{"index": 0, "delta": {"role": "assistant", "content": w if i == 0 else " " + w},
                                         "finish_reason": None}]}}
              for i, w in enumerate(words)]
    rec = {"test_id": "tests/test_tls.py::fresh", "request": {
        "method": "POST", "url": f"https://{host}/v1/v1/chat/completions", "headers": {}, "body": body,
        "endpoint": "/v1/chat/completions", "model": "gpt-4o-mini"},
        "response": {"body": chunks, "is_streaming": True}}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "fresh.json"), "w") as f:
        json.dump(rec, f, indent=2)
    return body, " ".join(words)


def test_corpus_https_recordings_through_every_python_client():
    items = https_items()
    assert len(items) > 50, len(items)
    hosts = {hostport(u).split("://")[1] for f, r, u in items}
    for client in ("urllib", "requests", "httpx", "httpx_async", "aiohttp"):
        tmp = tmpdir()
        try:
            res, r = _run_client(_unshare() + [PY, PY_CLIENT, client], items, shim_env(CORPUS), tmp)
            _check(items, res)
            assert b"llmreplay" not in r.stderr, r.stderr[-2000:]
            if client == "urllib":
                # the peer certificate is real: issued for the host, decoded by Python
                for (f, rec, url), got in zip(items, res):
                    host = url.split("/")[2].rsplit(":", 1)[0]
                    tls = got["tls"]
                    assert ["DNS", host] in tls["peer"]["subjectAltName"], (host, tls)
                    assert tls["version"] == "TLSv1.3" and tls["cipher"][0] == "TLS_AES_256_GCM_SHA384", tls
        except AssertionError as e:
            raise AssertionError(f"{client}: {e}")
        finally:
            rmtree(tmp)
    assert len(hosts) >= 5, hosts


def test_curl_cli_over_https_with_the_libcurl_layer_off():
    tmp = tmpdir()
    try:
        env = shim_env(CORPUS, LLMREPLAY_LAYERS="sockets,tls")
        # one process per request: each is answered with the first recording of its request
        for f, rec, url in [it for it in distinct_requests(corpus_files()) if it[2].startswith("https://")]:
            body = request_body(rec)
            bf = os.path.join(tmp, "body")
            with open(bf, "w") as fh:
                fh.write(body or "")
            args = ["curl", "-sS", "-v", url] + (["-H", "Content-Type: application/json", "--data-binary", "@" + bf] if body else [])
            r = run(_unshare() + args, env=env)
            assert r.returncode == 0, (f, r.stderr[-1500:])
            assert r.stdout == "".join(e for e in expected(rec)[2] if e is not None).encode(), (f, r.stdout[:200])
            err = r.stderr.decode()
            # verification stays on: curl checked the certificate and the host name itself
            assert "SSL certificate verify ok" in err and "ALPN: server accepted http/1.1" in err, err[-1500:]
    finally:
        rmtree(tmp)


def test_node_fetch_and_https_module_through_terminated_tls():
    """Node's statically linked OpenSSL: TLS is terminated by the helper; Node trusts its CA
    through NODE_EXTRA_CA_CERTS, with verification on."""
    env = shim_env(CORPUS)
    env["NODE_EXTRA_CA_CERTS"] = _ca_file(env)
    items = https_items()
    for mode, its in (("fetch", items), ("http", items[:12])):
        tmp = tmpdir()
        try:
            res, r = _run_client(_unshare() + ["node", os.path.join(NODE_DIR, "client.mjs"), mode], its, env, tmp)
            _check(its, res)
        finally:
            rmtree(tmp)


def _sdk_stream(env, body, cmd_prefix=()):
    args = {"body": {k: v for k, v in body.items() if k != "stream"}}  # no baseURL: https://api.openai.com/v1
    r = run(list(cmd_prefix) + _unshare() + ["node", os.path.join(NODE_DIR, "sdk.mjs"), "openai-stream", json.dumps(args)],
            env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return json.loads(r.stdout.decode().strip().splitlines()[-1]), r


OPENAI_STYLE = r'''
import json, sys, httpx
# an OpenAI-style client: the default endpoint, a bearer key, a streamed chat read as SSE
body = json.loads(sys.argv[1])
parts = []
with httpx.Client(base_url="https://api.openai.com/v1", headers={"Authorization": "Bearer sk-not-used"}) as c:
    with c.stream("POST", "/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            line = line.strip()  # httpx 0.23 keeps the line ending
            if line.startswith("data: ") and line != "data: [DONE]":
                parts.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
print(json.dumps({"text": "".join(parts), "chunks": len(parts)}))
'''


CA_VARS = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _user_envs():
    """A user's environment without the CA variables, and with them naming the system bundle
    (as on this machine): `llmreplay run` must add its CA either way."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_") and k not in CA_VARS}
    base["LLMREPLAY_CACHE_DIR"] = CACHE
    system = dict(base, **{k: "/etc/ssl/certs/ca-certificates.crt" for k in CA_VARS})
    return [("no CA variables", base), ("CA variables set", system)]


def test_new_user_default_endpoints_fresh_recordings():
    """As a new user would: `llmreplay run -d DIR -- CMD` with a recording made outside shared/,
    the npm openai SDK and a Python OpenAI-style client at their default HTTPS endpoints."""
    tmp = tmpdir()
    try:
        body, text = _fresh_recording(os.path.join(tmp, "rec"))
        runner = [CLI, "run", "-d", os.path.join(tmp, "rec"), "--"]
        for label, env in _user_envs():
            out, r = _sdk_stream(env, body, runner)
            assert out["text"] == text and out["chunks"] == 3, (label, out, r.stderr[-1500:])
            assert b"warning" not in r.stderr, (label, r.stderr[-1500:])
            r = run(runner + _unshare() + [PY, "-c", OPENAI_STYLE, json.dumps(body)], env=env, check=True)
            assert json.loads(r.stdout) == {"text": text, "chunks": 3}, (label, r.stdout)
        # plain LD_PRELOAD works for Python too (the hooked libssl needs no CA)
        r = run(_unshare() + [PY, "-c", OPENAI_STYLE, json.dumps(body)], env=shim_env(os.path.join(tmp, "rec")), check=True)
        assert json.loads(r.stdout)["text"] == text
    finally:
        rmtree(tmp)


H2_PY = r'''
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.set_alpn_protocols(sys.argv[1].split(","))
s = ctx.wrap_socket(socket.create_connection(("api.openai.com", 443)), server_hostname="api.openai.com")
print(s.selected_alpn_protocol())
'''

ALPN_NODE = r'''
const tls = require("node:tls");
const s = tls.connect({ host: "api.openai.com", port: 443, servername: "api.openai.com", ALPNProtocols: process.argv[1].split(",") });
s.on("error", (e) => { console.log("error " + e.code); process.exit(0); });
s.on("secureConnect", () => { console.log("selected " + s.alpnProtocol); s.end(); });
'''


def test_alpn_selects_http11_else_h2_and_refuses_others():
    """HTTP/1.1 whenever offered, h2 when only it is (the responder then speaks h2), and a
    clear refusal for a list with neither: hooked TLS (Python) and terminated TLS (Node)."""
    env = shim_env(EXAMPLES)
    for offer, want in (("h2", b"h2"), ("h2,http/1.1", b"http/1.1")):
        r = run(_unshare() + [PY, "-c", H2_PY, offer], env=env, check=True)
        assert r.stdout.strip() == want, (offer, r.stdout)
    r = run(_unshare() + [PY, "-c", H2_PY, "spdy/3.1"], env=env)
    err = r.stderr.decode()
    assert r.returncode != 0 and "NO_APPLICATION_PROTOCOL" in err, err[-1500:]
    assert "offered only spdy/3.1 (ALPN); llmreplay answers HTTP/1.1 and h2 only" in err, err[-1500:]
    env["NODE_EXTRA_CA_CERTS"] = _ca_file(env)
    for offer, want in (("h2", b"selected h2"), ("h2,http/1.1", b"selected http/1.1"), ("spdy/3.1", b"error")):
        r = run(_unshare() + ["node", "-e", ALPN_NODE, offer], env=env, check=True)
        assert r.stdout.startswith(want), (offer, r.stdout)
    assert b"offered only spdy/3.1 (ALPN)" in r.stderr, r.stderr[-1500:]


LOCAL_TLS = r'''
import http.server, json, socket, ssl, sys, threading, urllib.request
crt, key = sys.argv[1:3]
srv = http.server.HTTPServer(("127.0.0.1", 0), type("H", (http.server.BaseHTTPRequestHandler,), {
    "do_GET": lambda self: (self.send_response(200), self.send_header("Content-Length", "5"), self.end_headers(),
                            self.wfile.write(b"local")),
    "log_message": lambda *a: None}))
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(crt, key)
srv.socket = sctx.wrap_socket(srv.socket, server_side=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()
url = f"https://localhost:{srv.server_address[1]}/"
out = {"trusted": urllib.request.urlopen(url, context=ssl.create_default_context(cafile=crt)).read().decode()}
try:
    urllib.request.urlopen(url, context=ssl.create_default_context())
    out["default"] = "accepted"
except Exception as e:
    out["default"] = "CERTIFICATE_VERIFY_FAILED" if "CERTIFICATE_VERIFY_FAILED" in str(e) else repr(e)
print(json.dumps(out))
'''


def _self_signed(tmp):
    crt, key = os.path.join(tmp, "local.pem"), os.path.join(tmp, "local.key")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
         "-out", crt, "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True)
    return crt, key


def test_tls_to_hosts_not_intercepted_is_real_and_verified():
    """A local HTTPS server (the server side is never hooked) and a client in the same shimmed
    process: trusted with its CA, refused without it."""
    tmp = tmpdir()
    try:
        crt, key = _self_signed(tmp)
        r = run([PY, "-c", LOCAL_TLS, crt, key], env=shim_env(EXAMPLES), check=True, timeout=60)
        assert json.loads(r.stdout) == {"trusted": "local", "default": "CERTIFICATE_VERIFY_FAILED"}, r.stdout
    finally:
        rmtree(tmp)


def test_python_tls_terminated_when_the_tls_layer_is_off():
    """With the hooks off, Python's real handshake reaches the responder, which hands it to the
    helper by itself; `llmreplay run` made the child trust the CA (SSL_CERT_FILE)."""
    tmp = tmpdir()
    try:
        items = https_items()[:10]
        for label, env in _user_envs():
            env = dict(env, LLMREPLAY_LAYERS="curl,sockets")
            for client in ("urllib", "requests"):
                res, r = _run_client([CLI, "run", "-d", CORPUS, "--"] + _unshare() + [PY, PY_CLIENT, client], items, env, tmp)
                _check(items, res)
    finally:
        rmtree(tmp)


def test_https_under_asan():
    items = https_items()[:15]
    tmp = tmpdir()
    try:
        for client in ("urllib", "httpx_async"):
            res, r = _run_client([PY, PY_CLIENT, client], items, asan_env(shim_env(CORPUS)), tmp)
            _check(items, res)
            assert b"ERROR: AddressSanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr[-3000:]
    finally:
        rmtree(tmp)


def test_record_through_hooked_tls_then_replay_offline():
    """Recording mode over HTTPS: the responder goes upstream with https (checked against
    LLMREPLAY_UPSTREAM_CA), the files say https://, and replaying them offline gives the same."""
    from test_record import CASES, _ca, upstream
    tmp = tmpdir()
    try:
        ca, crt, key = _ca(tmp)
        rec = os.path.join(tmp, "rec")
        with upstream("--tls", crt, key) as port:
            items = [(None, {"request": {"body": b}}, f"https://localhost:{port}{p}") for m, p, b in CASES]
            jobs = [{"method": m, "url": u, "body": json.dumps(b) if b is not None else None}
                    for (m, p, b), (_, _, u) in zip(CASES, items)]
            jf, live_f = os.path.join(tmp, "jobs.json"), os.path.join(tmp, "live.json")
            with open(jf, "w") as f:
                json.dump(jobs, f)
            env = shim_env(rec, LLMREPLAY_MODE="record", LLMREPLAY_HOSTS=f"localhost:{port}", LLMREPLAY_UPSTREAM_CA=ca)
            run([PY, PY_CLIENT, "urllib", jf, live_f], env=env, check=True, timeout=60)
        files = sorted(os.listdir(rec))
        assert len(files) == len(CASES), files
        for fn in files:
            assert load(os.path.join(rec, fn))["request"]["url"].startswith(f"https://localhost:{port}/"), fn
        live = json.load(open(live_f))
        assert [x["status"] for x in live] == [200, 200, 429, 200, 200], [x["status"] for x in live]
        # offline, the recordings alone answer: the same bytes
        replay_f = os.path.join(tmp, "replay.json")
        run(_unshare() + [PY, PY_CLIENT, "urllib", jf, replay_f], env=shim_env(rec), check=True, timeout=60)
        replay = json.load(open(replay_f))
        assert [(x["status"], x["body"]) for x in replay] == [(x["status"], x["body"]) for x in live]
    finally:
        rmtree(tmp)


def test_libssl_api_on_a_non_blocking_socket():
    """A C libssl client: what each SSL_* call says on a hooked session (tests/c/tls_api.c)."""
    rec = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    body = json.dumps(rec["request"]["body"])
    for env in (shim_env(EXAMPLES), asan_env(shim_env(EXAMPLES))):
        r = run(_unshare() + [os.path.join(TESTS, "tls_api"), "api.openai.com", "443", "/v1/chat/completions", body],
                env=env, check=True, timeout=60)
        out = json.loads(r.stdout)
        want = {"finished": 1, "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "alpn": "http/1.1", "verify": 0,
                "host_ok": 1, "issuer": "llmreplay local CA", "chain": 2, "empty": -1, "empty_err": 2, "peek": "HTTP/",
                "pending": 5, "last_err": 6, "received_shutdown": 1, "shutdown": 1}
        assert {k: out[k] for k in want} == want, out
        assert out["total"] > 4000, out
        assert b"AddressSanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr[-2000:]


NODE_RECORD = r'''
const [url, body] = process.argv.slice(1);
const r = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } });
console.log(JSON.stringify({ status: r.status, text: await r.text() }));
'''


def test_record_through_node_terminated_tls_then_replay_offline():
    """Node records over HTTPS (TLS terminated by the helper, upstream over https), then replays
    the file with the upstream gone and no network."""
    from test_record import CHAT, _ca, upstream
    tmp = tmpdir()
    try:
        ca, crt, key = _ca(tmp)
        rec = os.path.join(tmp, "rec")
        body = json.dumps(dict(CHAT, stream=True))
        env = dict(_user_envs()[1][1], LLMREPLAY_UPSTREAM_CA=ca)
        with upstream("--tls", crt, key) as port:
            url = f"https://localhost:{port}/v1/chat/completions"
            cmd = ["node", "--input-type=module", "-e", NODE_RECORD, url, body]
            live = run([CLI, "run", "--mode", "record", "-d", rec, "--"] + cmd,
                       env=dict(env, LLMREPLAY_HOSTS=f"localhost:{port}"), check=True, timeout=60)
        (fn,) = os.listdir(rec)
        assert load(os.path.join(rec, fn))["request"]["url"] == f"https://localhost:{port}/v1/v1/chat/completions"
        replay = run([CLI, "run", "-d", rec, "--"] + _unshare() + cmd, env=env, check=True, timeout=60)
        got, want = json.loads(replay.stdout), json.loads(live.stdout)
        assert got == want and want["status"] == 200 and "data: " in want["text"], (got, want)
    finally:
        rmtree(tmp)


def test_https_streams_are_incremental():
    """A paced stream arrives event by event through hooked TLS (every Python client) and
    through terminated TLS (Node)."""
    rec = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    item = (None, rec, "https://api.openai.com/v1/chat/completions")
    env = shim_env(EXAMPLES, LLMREPLAY_PACE_MS=40)
    env["NODE_EXTRA_CA_CERTS"] = _ca_file(env)
    n = len(expected(rec)[2])
    clients = [[PY, PY_CLIENT, c] for c in ("urllib", "requests", "httpx", "httpx_async", "aiohttp")]
    for client in clients + [["node", os.path.join(NODE_DIR, "client.mjs"), m] for m in ("fetch", "http")]:
        tmp = tmpdir()
        try:
            res, _ = _run_client(_unshare() + client, [item], env, tmp)
            _check([item], res)
            got = res[0]
            assert got["reads"] >= n // 2 and got["t_last"] - got["t_first"] >= 0.04 * (n - 3), (client, got)
        finally:
            rmtree(tmp)


NODE_CONCURRENT = r'''
const [url, body, want] = process.argv.slice(1);
const one = async () => (await (await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } })).text()) === want;
const ok = await Promise.all(Array.from({ length: 48 }, one));
console.log(JSON.stringify({ errors: ok.filter((x) => !x).length }));
'''


def test_concurrent_https_connections_hooked_and_terminated():
    """32 threads and 64 asyncio tasks (hooked libssl), 48 concurrent Node fetches (each a TLS
    connection through the helper) all get the whole answer."""
    from test_sockets import CONCURRENT
    rec = load(SEED)
    want = "".join(expected(rec)[2])
    url = "https://api.openai.com/v1/chat/completions"
    env = shim_env(SEED_DIR)
    for mode in ("threads", "asyncio"):
        r = run(_unshare() + [PY, "-c", CONCURRENT, url, request_body(rec), want, mode], env=env, timeout=300)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        assert json.loads(r.stdout)["errors"] == [], r.stdout
    env["NODE_EXTRA_CA_CERTS"] = _ca_file(env)
    r = run(_unshare() + ["node", "--input-type=module", "-e", NODE_CONCURRENT, url, request_body(rec), want], env=env,
            check=True, timeout=300)
    assert json.loads(r.stdout) == {"errors": 0}, r.stdout


NODE_PACED4 = r'''
const [url, body] = process.argv.slice(1);
const one = async () => {
  const r = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } });
  let text = "";
  for await (const c of r.body) text += Buffer.from(c).toString();
  return text;
};
console.log(JSON.stringify(await Promise.all([0, 1, 2, 3].map(one))));
'''

PY_PACED4 = r'''
import json, sys, threading, urllib.request
url, body = sys.argv[1], sys.argv[2].encode()
out = [None] * 4
def one(i):
    q = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    out[i] = urllib.request.urlopen(q).read().decode()
ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(out))
'''


def test_four_paced_streams_over_terminated_tls_finish_every_time():
    """Four concurrent paced streams (`llmreplay run --pace 20`) from Node fetch through the TLS
    helper, and from Python threads through both TLS paths, finish every time: the responder's
    timer once waited forever when the stream examined last was already overdue."""
    rec = load(SEED)
    want = "".join(expected(rec)[2])
    url = "https://api.openai.com/v1/chat/completions"
    env = _user_envs()[0][1]
    runner = [CLI, "run", "--pace", "20", "-d", SEED_DIR, "--"] + _unshare()
    clients = [("node", env, ["node", "--input-type=module", "-e", NODE_PACED4]),
               ("python hooked", env, [PY, "-c", PY_PACED4]),
               ("python terminated", dict(env, LLMREPLAY_LAYERS="curl,sockets"), [PY, "-c", PY_PACED4])]
    for label, e, cmd in clients:
        for i in range(8 if label == "node" else 2):
            p = subprocess.Popen(runner + cmd + [url, request_body(rec)], env=e, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            try:
                out, err = p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)  # the client too, not only `llmreplay run`
                p.communicate()
                raise AssertionError(f"{label}: four paced streams stalled (run {i + 1})")
            assert p.returncode == 0, (label, err[-1500:])
            assert json.loads(out) == [want] * 4, (label, out[:300])


NODE_MODELS = r'''
try { const r = await fetch("https://api.openai.com/v1/models"); console.log("status " + r.status); }
catch (e) { console.log("error " + (e.cause?.code || e.message)); }
'''


def test_terminated_tls_failures_say_what_to_do():
    """Node without the CA trusted, and without the helper binary: the request fails, and the
    messages say what to do."""
    env = shim_env(CORPUS, NODE_EXTRA_CA_CERTS=None)
    r = run(_unshare() + ["node", "--input-type=module", "-e", NODE_MODELS], env=env, check=True)
    assert r.stdout.strip() == b"error UNABLE_TO_VERIFY_LEAF_SIGNATURE", r.stdout
    assert b"does not trust llmreplay's CA: use `llmreplay run` or set NODE_EXTRA_CA_CERTS" in r.stderr, r.stderr
    r = run(_unshare() + ["node", "--input-type=module", "-e", NODE_MODELS], env=dict(env, LLMREPLAY_BIN="/nonexistent"),
            check=True)
    assert r.stdout.startswith(b"error"), r.stdout
    assert b"needs the llmreplay binary to terminate TLS" in r.stderr and b"LLMREPLAY_BIN" in r.stderr, r.stderr
    # and with `llmreplay run`, the same program works
    r = run([CLI, "run", "--"] + _unshare() + ["node", "--input-type=module", "-e", NODE_MODELS],
            env=dict(_user_envs()[1][1], LLMREPLAY_DIR=CORPUS), check=True)
    assert r.stdout.strip() == b"status 200", (r.stdout, r.stderr[-1000:])


def test_local_ca_is_made_once_and_its_key_kept_private():
    tmp = tmpdir()
    try:
        env = dict(shim_env(), LLMREPLAY_CACHE_DIR=os.path.join(tmp, "cache"), LD_PRELOAD="")
        ps = [subprocess.Popen([CLI, "ca"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(12)]
        outs = [p.communicate(timeout=60) for p in ps]
        assert all(p.returncode == 0 for p in ps), outs
        assert len({o for o, e in outs}) == 1, outs  # one CA, whoever won the race
        ca = outs[0][0].decode().strip()
        d = os.path.dirname(ca)
        key = os.path.join(d, "ca-key.pem")
        assert os.stat(key).st_mode & 0o777 == 0o600, oct(os.stat(key).st_mode)
        assert sorted(os.listdir(d)) == ["ca-bundle.pem", "ca-key.pem", "ca.pem"], os.listdir(d)
        bundle = run([CLI, "ca", "--bundle"], env=env, check=True).stdout.decode().strip()
        assert open(bundle).read().endswith(open(ca).read())
        x = run(["openssl", "x509", "-in", ca, "-noout", "-text"], check=True).stdout.decode()
        assert "CA:TRUE" in x and "Certificate Sign" in x, x
        os.chmod(key, 0o644)
        r = run([CLI, "ca"], env=env)
        assert r.returncode == 1 and b"chmod 600" in r.stderr, r.stderr
    finally:
        rmtree(tmp)


def test_curl_cli_through_terminated_tls():
    """The curl CLI with both of the shim's TLS-side layers off stands in for a client whose TLS
    cannot be hooked: its real handshake is terminated by the helper, and it trusts the CA
    because `llmreplay run` set CURL_CA_BUNDLE (to a copy of the user's bundle plus the CA)."""
    rec = load(os.path.join(EXAMPLES, "openai-chat.json"))
    for label, env in _user_envs():
        env = dict(env, LLMREPLAY_LAYERS="sockets")
        r = run([CLI, "run", "-d", EXAMPLES, "--"] + _unshare() +
                ["curl", "-sS", "-v", "https://api.openai.com/v1/chat/completions", "-H", "Content-Type: application/json",
                 "-d", json.dumps(rec["request"]["body"])], env=env)
        err = r.stderr.decode()
        assert r.returncode == 0, (label, err[-1500:])
        assert json.loads(r.stdout)["choices"][0]["message"]["content"] == "Hello! I'm a recorded answer.", r.stdout
        assert "SSL certificate verify ok" in err and "issuer: O=llmreplay; CN=llmreplay local CA" in err, err[-2000:]
