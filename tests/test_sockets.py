"""The socket layer: unmodified plain-HTTP clients (Python urllib, requests, httpx sync and async,
aiohttp; Node fetch, http, the openai and ollama SDKs; the curl CLI with the libcurl layer off)
get recorded answers from the in-process responder, with no network at all."""
import base64, json, os, signal, socket, subprocess, time
from lib import *

NODE_DIR = os.path.join(ROOT, "tests", "node")
PY_CLIENT = os.path.join(ROOT, "tests", "clients", "py_client.py")


def http_items():
    """Every corpus recording made over http://, asked of its own host and port."""
    return [it for it in every_request(corpus_files()) if it[2].startswith("http://")]


_jobs = client_jobs


_check = check_client_results


def _run_client(cmd, items, env, tmp, timeout=600):
    jf, of = os.path.join(tmp, "jobs.json"), os.path.join(tmp, "out.json")
    with open(jf, "w") as f:
        json.dump(_jobs(items), f)
    r = run(cmd + [jf, of], env=env, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return json.load(open(of)), r


def _sock_env(dirs=CORPUS, **extra):
    return shim_env(dirs, **extra)


def _unshare():
    return unshare()


def test_corpus_http_recordings_through_one_python_process():
    items = http_items()
    assert len(items) > 900, len(items)
    tmp = tmpdir()
    try:
        res, r = _run_client(_unshare() + [PY, PY_CLIENT, "requests"], items, _sock_env(), tmp)
        _check(items, res)
        assert b"llmreplay" not in r.stderr, r.stderr[-2000:]
    finally:
        rmtree(tmp)


def test_corpus_http_recordings_through_one_node_process():
    tmp = tmpdir()
    try:
        items = http_items()
        res, _ = _run_client(_unshare() + ["node", os.path.join(NODE_DIR, "client.mjs"), "fetch"], items, _sock_env(), tmp)
        _check(items, res)
    finally:
        rmtree(tmp)


def _sample():
    """A streamed and a plain chat, an Ollama stream, embeddings, and a model listing."""
    # the first recording of each request: a fresh process is answered with that one
    items = [it for it in distinct_requests(corpus_files()) if it[2].startswith("http://")]
    pick, seen = [], set()
    for it in items:
        rec = it[1]
        kind = (endpoint_of(rec), bool(rec["response"].get("is_streaming")))
        if kind not in seen:
            seen.add(kind)
            pick.append(it)
    return pick


def test_every_python_client():
    items = _sample()
    for client in ("urllib", "requests", "httpx", "httpx_async", "aiohttp"):
        tmp = tmpdir()
        try:
            res, _ = _run_client(_unshare() + [PY, PY_CLIENT, client], items, _sock_env(), tmp)
            _check(items, res)
        except AssertionError as e:
            raise AssertionError(f"{client}: {e}")
        finally:
            rmtree(tmp)


def test_node_http_module():
    tmp = tmpdir()
    try:
        items = _sample()
        res, _ = _run_client(_unshare() + ["node", os.path.join(NODE_DIR, "client.mjs"), "http"], items, _sock_env(), tmp)
        _check(items, res)
    finally:
        rmtree(tmp)


def test_curl_cli_with_only_the_socket_layer():
    items = _sample()
    tmp = tmpdir()
    try:
        for f, rec, url in items:
            body = request_body(rec)
            bf = os.path.join(tmp, "body")
            with open(bf, "w") as fh:
                fh.write(body or "")
            args = ["curl", "-sS", url] + (["-H", "Content-Type: application/json", "--data-binary", "@" + bf] if body else [])
            r = run(_unshare() + args, env=_sock_env(LLMREPLAY_LAYERS="sockets"), check=True)
            assert r.stdout == "".join(e for e in expected(rec)[2] if e is not None).encode(), (f, r.stdout[:200])
    finally:
        rmtree(tmp)


def _paced(client_cmd, pace=40):
    rec = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    item = (None, rec, "http://localhost:8000/v1/chat/completions")
    tmp = tmpdir()
    try:
        res, _ = _run_client(client_cmd, [item], _sock_env(EXAMPLES, LLMREPLAY_HOSTS="localhost:8000",
                                                            LLMREPLAY_PACE_MS=pace), tmp)
        _check([item], res)
        n = len(expected(rec)[2])
        got = res[0]
        assert got["reads"] >= n // 2, got["reads"]
        assert got["t_last"] - got["t_first"] >= pace / 1000 * (n - 3), (got["t_first"], got["t_last"])
    finally:
        rmtree(tmp)


def test_streams_are_incremental_for_every_client():
    for client in ("urllib", "requests", "httpx", "httpx_async", "aiohttp"):
        _paced([PY, PY_CLIENT, client])
    _paced(["node", os.path.join(NODE_DIR, "client.mjs"), "fetch"])
    _paced(["node", os.path.join(NODE_DIR, "client.mjs"), "http"])


def _sdk(what, args, env):
    r = run(_unshare() + ["node", os.path.join(NODE_DIR, "sdk.mjs"), what, json.dumps(args)], env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_npm_openai_sdk_stream_chat_and_error():
    env = _sock_env(EXAMPLES, LLMREPLAY_HOSTS="localhost:8000", LLMREPLAY_PACE_MS=30)
    base = {"baseURL": "http://localhost:8000/v1"}
    body = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))["request"]["body"]
    out = _sdk("openai-stream", dict(base, body=body), env)
    assert out["text"] == "Hello! I'm a recorded answer, replayed by llmreplay.", out
    assert out["last_ms"] - out["first_ms"] >= 30 * (out["chunks"] - 3), out  # a stream, not one block
    body = load(os.path.join(EXAMPLES, "openai-chat.json"))["request"]["body"]
    assert _sdk("openai-chat", dict(base, body=body), env)["text"] == "Hello! I'm a recorded answer."
    body = load(os.path.join(EXAMPLES, "openai-rate-limit.json"))["request"]["body"]
    err = _sdk("openai-error", dict(base, body=body), env)
    assert err["status"] == 429 and "Rate limit reached" in err["message"], err
    # a miss is a 404 the SDK does not retry, with the explanation in its message
    miss = _sdk("openai-error", dict(base, body={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "?"}]}), env)
    assert miss["status"] == 404 and "no recording matches" in miss["message"], miss


def test_npm_ollama_sdk():
    env = _sock_env(CORPUS)
    gen = next(r for f, r, u in http_items() if endpoint_of(r) == "/api/generate" and r["response"]["is_streaming"]
               and "localhost:11434" in u)
    body = dict(gen["request"]["body"])
    body.pop("stream", None)
    out = _sdk("ollama-generate-stream", {"host": "http://localhost:11434", "body": body}, env)
    want = "".join(c["__data__"]["response"] for c in gen["response"]["body"])
    assert out["text"] == want and out["chunks"] == len(gen["response"]["body"]), out
    chat = load(os.path.join(EXAMPLES, "ollama-chat.json"))
    out = _sdk("ollama-chat", {"host": "http://127.0.0.1:11434", "body": chat["request"]["body"]}, _sock_env(EXAMPLES))
    assert out["text"].startswith("Sunlight scatters"), out


CONCURRENT = r'''
import sys, json, threading, asyncio, requests, aiohttp
url, body, want, mode = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4]
errors = []
def worker():
    s = requests.Session()
    for _ in range(3):
        r = s.post(url, data=body, headers={"Content-Type": "application/json"})
        if r.content != want: errors.append(len(r.content))
async def aio():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
        async def one():
            async with s.post(url, data=body) as r:
                if await r.read() != want: errors.append("aio")
        await asyncio.gather(*[one() for _ in range(64)])
if mode == "threads":
    ts = [threading.Thread(target=worker) for _ in range(32)]
    [t.start() for t in ts]; [t.join() for t in ts]
else:
    asyncio.run(aio())
print(json.dumps({"errors": errors}))
'''


def test_32_concurrent_connections_threads_and_asyncio():
    rec = load(SEED)
    want = "".join(expected(rec)[2])
    for mode in ("threads", "asyncio"):
        r = run(_unshare() + [PY, "-c", CONCURRENT, "http://api.openai.com/v1/chat/completions", request_body(rec), want, mode],
                env=_sock_env(SEED_DIR), timeout=300)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        assert json.loads(r.stdout)["errors"] == [], r.stdout


RAW = r'''
import socket, sys, os, json, time
host, port = "localhost", 11434
def conn():
    s = socket.create_connection((host, port)); s.settimeout(10); return s
pending = {}
def read_response(s):
    """One response from s; bytes past its end stay pending for the next call."""
    data = pending.pop(s.fileno(), b"")
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d: return data
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    hl = head.decode().lower()
    if "content-length:" in hl:
        n = int(hl.split("content-length:")[1].split("\r\n")[0])
        while len(rest) < n: rest += s.recv(65536)
        pending[s.fileno()] = rest[n:]
        return head + b"\r\n\r\n" + rest[:n]
    while b"0\r\n\r\n" not in rest:
        d = s.recv(65536)
        if not d: break
        rest += d
    end = rest.find(b"0\r\n\r\n") + 5
    pending[s.fileno()] = rest[end:]
    return head + b"\r\n\r\n" + rest[:end]
body = sys.argv[1].encode()
out = {}
# pipelining: two requests in one write, two answers in order
s = conn()
req = b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
s.sendall(req + req)
a = read_response(s); b = read_response(s)
out["pipelined"] = [a.split(b"\r\n")[0].decode(), b.split(b"\r\n")[0].decode(), a.split(b"\r\n\r\n",1)[1] == b.split(b"\r\n\r\n",1)[1]]
# chunked request body
s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
out["chunked_body"] = read_response(s).split(b"\r\n")[0].decode()
# Expect: 100-continue: the interim answer comes before the body is sent
s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
interim = s.recv(100)
s.sendall(body)
out["continue"] = [interim.decode(), read_response(s).split(b"\r\n")[0].decode()]
# absolute-form target
s.sendall(b"POST http://localhost:11434/api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
out["absolute"] = read_response(s).split(b"\r\n")[0].decode()
s.close()
# HTTP/1.0: the answer ends by closing
s = conn()
s.sendall(b"POST /api/chat HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
data = b""
while True:
    d = s.recv(65536)
    if not d: break
    data += d
out["http10"] = [data.split(b"\r\n")[0].decode(), b"connection: close" in data.lower()]
# malformed and too large requests: 400 / 413, then the connection closes
for name, junk in (("bad", b"GARBAGE\x01 / HTTP/9\r\n\r\n"), ("huge", b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")):
    s = conn(); s.sendall(junk)
    data = b""
    while True:
        try: d = s.recv(65536)
        except ConnectionResetError: break
        if not d: break
        data += d
    out[name] = data.split(b"\r\n")[0].decode()
# a path that is no LLM call, on an intercepted host
s = conn(); s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
out["not_llm"] = read_response(s).split(b"\r\n")[0].decode()
# inet view of the swapped socket
s = conn()
out["peer"] = list(s.getpeername()); out["family"] = s.family.name
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
out["nodelay"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
d = s.dup(); out["dup_peer"] = list(d.getpeername()); d.close()
print(json.dumps(out))
'''


def test_responder_speaks_http_carefully():
    chat = load(os.path.join(EXAMPLES, "ollama-chat.json"))
    r = run(_unshare() + [PY, "-c", RAW, request_body(chat)], env=_sock_env(EXAMPLES), timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = json.loads(r.stdout)
    assert out["pipelined"] == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK", True], out
    assert out["chunked_body"] == "HTTP/1.1 200 OK", out
    assert out["continue"] == ["HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK"], out
    assert out["absolute"] == "HTTP/1.1 200 OK", out
    assert out["http10"] == ["HTTP/1.1 200 OK", True], out
    assert out["bad"] == "HTTP/1.1 400 Bad Request" and out["huge"] == "HTTP/1.1 413 Payload Too Large", out
    assert out["not_llm"] == "HTTP/1.1 404 Not Found", out
    assert out["peer"] in (["127.0.0.1", 11434], ["::1", 11434, 0, 0]) and out["family"].startswith("AF_INET"), out
    assert out["nodelay"] == 1 and out["dup_peer"] == out["peer"], out


FORK = r'''
import http.client, os, sys, json
body = sys.argv[1]
c = http.client.HTTPConnection("localhost", 11434); c.connect()
pid = os.fork()
if pid == 0:
    c.request("POST", "/api/chat", body=body); r = c.getresponse()
    os._exit(0 if r.status == 200 and r.read() else 1)
_, st = os.waitpid(pid, 0)
# the parent goes on using the same keep-alive connection, and opens new ones
c.request("POST", "/api/chat", body=body); r = c.getresponse(); ok = r.status == 200 and len(r.read()) > 10
c2 = http.client.HTTPConnection("localhost", 11434)
c2.request("POST", "/api/chat", body=body); ok2 = c2.getresponse().status == 200
# a child that opens its own connection after fork gets its own responder
pid = os.fork()
if pid == 0:
    c3 = http.client.HTTPConnection("localhost", 11434)
    c3.request("POST", "/api/chat", body=body); os._exit(0 if c3.getresponse().status == 200 else 1)
_, st2 = os.waitpid(pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(st), ok, ok2, os.waitstatus_to_exitcode(st2)]))
'''


def test_fork_after_connect():
    chat = load(os.path.join(EXAMPLES, "ollama-chat.json"))
    r = run(_unshare() + [PY, "-c", FORK, request_body(chat)], env=_sock_env(EXAMPLES), timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout) == [0, True, True, 0], (r.stdout, r.stderr[-1500:])


MIDSTREAM = r'''
import socket, sys, json, time, signal
body = sys.argv[1].encode()
for i in range(20):
    s = socket.create_connection(("localhost", 8000))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    s.recv(200)          # the head and maybe an event, then hang up mid-stream
    s.close()
time.sleep(0.3)
s = socket.create_connection(("localhost", 8000))
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
data = b""
while not data.endswith(b"0\r\n\r\n"):
    d = s.recv(65536)
    if not d: break
    data += d
print(json.dumps({"complete": data.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")}))
'''


def test_client_hanging_up_mid_stream():
    rec = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    env = _sock_env(EXAMPLES, LLMREPLAY_HOSTS="localhost:8000", LLMREPLAY_PACE_MS=5)
    r = run(_unshare() + [PY, "-c", MIDSTREAM, request_body(rec)], env=env, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout) == {"complete": True}, (r.returncode, r.stdout, r.stderr[-1500:])


def test_layers_switch_and_egress_deny():
    chat = load(os.path.join(EXAMPLES, "ollama-chat.json"))
    code = ("import http.client,sys\nc=http.client.HTTPConnection('localhost',11434)\n"
            "try:\n c.request('POST','/api/chat',body=sys.argv[1]); print(c.getresponse().status)\n"
            "except OSError as e: print(type(e).__name__)")
    on = run(_unshare() + [PY, "-c", code, request_body(chat)], env=_sock_env(EXAMPLES), check=True)
    off = run(_unshare() + [PY, "-c", code, request_body(chat)], env=_sock_env(EXAMPLES, LLMREPLAY_LAYERS="curl"), check=True)
    # with the socket layer off the connection really goes out: refused, or no network at all
    assert on.stdout.strip() == b"200" and off.stdout.strip() in (b"ConnectionRefusedError", b"OSError"), (on.stdout, off.stdout)
    # deny: any other outbound TCP is refused at once (192.0.2.1 is TEST-NET, never reached)
    code = ("import socket\nfor _ in range(3):\n try: socket.create_connection(('192.0.2.1', 80), timeout=5)\n"
            " except OSError as e: print(type(e).__name__)")
    r = run([PY, "-c", code], env=_sock_env(EXAMPLES, LLMREPLAY_EGRESS="deny"), check=True)
    assert r.stdout.split() == [b"ConnectionRefusedError"] * 3, r.stdout
    assert r.stderr.decode().count("refused a connection to 192.0.2.1:80") == 1, r.stderr


def test_python_resolver_answers_and_ipv6():
    code = r'''
import socket, json
res = {}
for fam in (socket.AF_INET, socket.AF_INET6, socket.AF_UNSPEC):
    res[str(int(fam))] = sorted({(a[0].name, a[4][0]) for a in socket.getaddrinfo("api.openai.com", 80, fam, socket.SOCK_STREAM)})
res["hostbyname"] = socket.gethostbyname("api.openai.com")
s = socket.create_connection(("api.openai.com", 80)); res["v"] = s.family.name
print(json.dumps(res))
'''
    r = run(_unshare() + [PY, "-c", code], env=_sock_env(SEED_DIR), check=True)
    out = json.loads(r.stdout)
    assert out["2"] == [["AF_INET", "198.18.0.1"]] and out["10"][0][0] == "AF_INET6", out
    assert len(out["0"]) == 2 and out["hostbyname"] == "198.18.0.1", out


def test_socket_layer_under_asan():
    """The sample through Python and the curl CLI with the ASan+UBSan build of the shim."""
    items = _sample()
    tmp = tmpdir()
    try:
        res, r = _run_client([PY, PY_CLIENT, "requests"], items, asan_env(_sock_env()), tmp)
        _check(items, res)
        assert b"ERROR: AddressSanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr[-3000:]
        # libcurl with its own layer off, through the socket layer (a C client: the curl CLI
        # itself hangs in setlocale when any ASan runtime is preloaded, shim or not)
        import test_corpus
        test_corpus._run_client("easy", items, env=asan_env(_sock_env(LLMREPLAY_LAYERS="sockets")), exact_events=False)
    finally:
        rmtree(tmp)
