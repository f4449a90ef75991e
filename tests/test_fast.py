"""Requests answered in the caller's thread (README, "The socket layer"): a keep-alive client's
write that completes a request gets its answer before the write returns. Checked through the
debug line the shim prints at exit ("N requests answered in the caller's thread"), for
http.client over http and hooked https, requests, a pipelining asyncio client (non-blocking,
epoll, requests split across writes) and Node fetch; never for a paced stream."""
import json, os, re
from lib import *

URL = "http://api.openai.com/v1/chat/completions"


def _unshare():
    return ["unshare", "-rn"] if run(["unshare", "-rn", "true"]).returncode == 0 else []


def _inline_count(stderr):
    m = re.search(rb"(\d+) requests answered in the caller's thread", stderr)
    return int(m.group(1)) if m else 0


def _want():
    rec = load(SEED)
    return request_body(rec), "".join(expected(rec)[2])


HTTP_CLIENT = r'''
import http.client, ssl, sys
scheme, body, want, n = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
if scheme == "https":
    c = http.client.HTTPSConnection("api.openai.com", 443, context=ssl.create_default_context())
else:
    c = http.client.HTTPConnection("api.openai.com", 80)
for i in range(n):
    c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    r = c.getresponse()
    got = r.read()
    assert r.status == 200 and got == want, (i, r.status, len(got), len(want))
print("ok")
'''


def _py(code, *args, **env):
    body, want = _want()
    r = run(_unshare() + [PY, "-c", code, *args, body, want, "20"],
            env=shim_env(SEED_DIR, LLMREPLAY_LOG="debug", **env), timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return r


def test_keep_alive_http_client_is_answered_in_its_thread():
    r = _py(HTTP_CLIENT, "http")
    assert _inline_count(r.stderr) == 19, r.stderr.decode()[-1500:]  # the first request tells HTTP/1 apart


def test_keep_alive_hooked_https_is_answered_in_its_thread():
    r = _py(HTTP_CLIENT, "https")
    assert _inline_count(r.stderr) == 19, r.stderr.decode()[-1500:]


def test_paced_stream_goes_through_the_responder():
    r = _py(HTTP_CLIENT, "http", LLMREPLAY_PACE_MS=1)
    assert _inline_count(r.stderr) == 0, r.stderr.decode()[-1500:]
    assert b"answered in the caller's thread" not in r.stderr


REQUESTS = r'''
import requests, sys
body, want, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
s = requests.Session()
for i in range(n):
    r = s.post("http://api.openai.com/v1/chat/completions", data=body, headers={"content-type": "application/json"}, stream=i % 2 == 0)
    got = b"".join(r.iter_content(None)) if i % 2 == 0 else r.content
    assert r.status_code == 200 and got == want, (i, r.status_code, len(got))
print("ok")
'''


def test_requests_session_is_answered_in_its_thread():
    r = _py(REQUESTS)
    assert _inline_count(r.stderr) == 19, r.stderr.decode()[-1500:]


# Non-blocking, epoll (asyncio's selector), pipelined: requests written back to back in one
# write, a request split across writes with a pause between, a request with its head and body
# written separately; the answers read after all were written.
PIPELINE = r'''
import asyncio, sys
body, want, n = sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])
req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\ncontent-type: application/json\r\n"
       b"content-length: %d\r\n\r\n" % len(body)) + body

async def response(r):
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    if b"chunked" in head.lower():
        out = b""
        while True:
            size = int((await r.readuntil(b"\r\n")).strip(), 16)
            data = await r.readexactly(size + 2)
            if not size: return out
            out += data[:-2]
    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return await r.readexactly(n)

async def main():
    r, w = await asyncio.open_connection("api.openai.com", 80)
    w.write(req); await w.drain()
    assert await response(r) == want
    for k in range(3):
        w.write(req * 3); await w.drain()             # pipelined in one write
        half = len(req) // 2
        w.write(req[:half]); await w.drain()          # a request split across writes
        await asyncio.sleep(0.01)
        w.write(req[half:]); await w.drain()
        w.write(req[:req.index(b"\r\n\r\n") + 4]); await w.drain()  # head, then body
        w.write(body); await w.drain()
        for i in range(5):
            assert await response(r) == want, (k, i)
    w.close()
    print("ok")
asyncio.run(main())
'''


def test_pipelining_non_blocking_epoll_client():
    r = _py(PIPELINE)
    assert _inline_count(r.stderr) >= 12, r.stderr.decode()[-1500:]


NODE_FETCH = r'''
const [body, want, n] = process.argv.slice(1);
for (let i = 0; i < +n; i++) {
  const r = await fetch("http://api.openai.com/v1/chat/completions", { method: "POST", body, headers: { "content-type": "application/json" } });
  const got = await r.text();
  if (r.status !== 200 || got !== want) { console.error("bad answer", i, r.status, got.length); process.exit(1); }
}
console.log("ok");
'''


def test_node_fetch_keep_alive_is_answered_in_its_thread():
    body, want = _want()
    r = run(_unshare() + ["node", "--input-type=module", "-e", NODE_FETCH, body, want, "20"],
            env=shim_env(SEED_DIR, LLMREPLAY_LOG="debug"), timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert _inline_count(r.stderr) >= 15, r.stderr.decode()[-1500:]


def test_fast_path_under_asan():
    body, want = _want()
    for code in (HTTP_CLIENT, PIPELINE):
        args = ["http"] if code is HTTP_CLIENT else []
        r = run(_unshare() + [PY, "-c", code, *args, body, want, "20"],
                env=asan_env(shim_env(SEED_DIR, LLMREPLAY_LOG="debug")), timeout=300)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        assert _inline_count(r.stderr) >= 12, r.stderr.decode()[-1500:]


# Bytes written past the hooks (a raw syscall) come before the next hooked write's; a write
# after the client's own shutdown(SHUT_WR) fails with EPIPE as on TCP.
RAW_ORDER = r'''
import ctypes, socket, sys
body, want, n = sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])
req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\ncontent-length: %d\r\n\r\n" % len(body)) + body
libc = ctypes.CDLL(None, use_errno=True)
s = socket.create_connection(("api.openai.com", 80))
f = s.makefile("rb")
def response():
    head = b""
    while not head.endswith(b"\r\n\r\n"): head += f.read(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    out = b""
    while True:
        size = int(f.readline().strip(), 16)
        data = f.read(size + 2)
        if not size: return out
        out += data[:-2]
for i in range(n):
    if i % 3 == 2:
        k = len(req) // 3
        assert libc.syscall(1, s.fileno(), req[:k], k) == k  # SYS_write: no hook sees it
        s.sendall(req[k:])
    else:
        s.sendall(req)
    assert response() == want, i
s.shutdown(socket.SHUT_WR)
try:
    s.send(req)
    raise SystemExit("a send after shutdown(SHUT_WR) succeeded")
except BrokenPipeError:
    pass
print("ok")
'''


def test_bytes_past_the_hooks_come_first_and_shutdown_is_kept():
    r = _py(RAW_ORDER)
    assert _inline_count(r.stderr) >= 10, r.stderr.decode()[-1500:]


# Requests met before take their match key from a memo (engine/keymemo.c) by their exact bytes:
# the same request still gets its recordings in order, and one that differs from it only in
# the middle of its body (same length, same ends) gets its own.
SEQUENCE = r'''
import http.client, json, sys, time
reqs, pause = json.loads(sys.argv[1]), float(sys.argv[2])
c = http.client.HTTPConnection("api.openai.com", 80)
out = []
for b in reqs:
    c.request("POST", "/v1/chat/completions", b, {"content-type": "application/json"})
    r = c.getresponse()
    got = b""
    while True:  # in pieces, pausing: a slow reader
        k = r.read(65536)
        if not k: break
        got += k
        time.sleep(pause)
    text = json.loads(got)["choices"][0]["message"]["content"] if r.status == 200 and len(got) < 4096 else None
    out.append([r.status, r.getheader("transfer-encoding"), len(got), got.count(b"data: "), got[-14:].decode(), text])
print(json.dumps(out))
'''


def test_memoised_keys_keep_order_and_tell_look_alikes_apart():
    rec = load(os.path.join(EXAMPLES, "openai-chat.json"))
    tmp = tmpdir()
    try:
        def body(mid):
            b = json.loads(json.dumps(rec["request"]["body"]))
            b["messages"][0]["content"] = "x" * 60 + mid + "x" * 60
            return b
        for name, mid in (("a1", "A"), ("a2", "A"), ("b", "B")):
            r = json.loads(json.dumps(rec))
            r["request"]["body"] = body(mid)
            r["response"]["body"]["__data__"]["choices"][0]["message"]["content"] = "answer " + name
            with open(os.path.join(tmp, name + ".json"), "w") as f:
                json.dump(r, f)
        a, b = json.dumps(body("A")), json.dumps(body("B"))
        assert len(a) == len(b) and a[:40] == b[:40] and a[-40:] == b[-40:]
        c = json.dumps(body("C"))  # the same length and ends again, recorded nowhere
        reordered = json.dumps(dict(reversed(list(body("B").items()))))  # other bytes, the same request
        sent = [a, b, a, b, a, c, reordered]
        r = run(_unshare() + [PY, "-c", SEQUENCE, json.dumps(sent), "0"], env=shim_env(tmp, LLMREPLAY_LOG="debug"), timeout=120)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        got = [o[5] if o[0] == 200 else o[0] for o in json.loads(r.stdout)]
        assert got == ["answer a1", "answer b", "answer a2", "answer b", "answer a2", 404, "answer b"], got
        assert _inline_count(r.stderr) == len(sent) - 1, r.stderr.decode()[-1500:]
    finally:
        rmtree(tmp)


# Answers larger than the socket pair takes at once: the caller's thread writes what fits, the
# responder the rest as the client reads (slowly here); the connection then serves the next
# request. A stream of ~3 MB and a JSON answer of ~1 MB, each twice, read 64 KiB at a time.


def _big_stream():
    """The example stream with 1,000 events of 3,000 characters: ~3.3 MB on the wire."""
    stream = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    chunk = json.loads(json.dumps(stream["response"]["body"][1]))
    chunk["__data__"]["choices"][0]["delta"]["content"] = "y" * 3000
    stream["response"]["body"] = stream["response"]["body"][:1] + [chunk] * 1000 + stream["response"]["body"][-1:]
    return stream


def test_answers_larger_than_the_socket_buffer():
    stream = _big_stream()
    plain = load(os.path.join(EXAMPLES, "openai-chat.json"))
    tmp = tmpdir()
    try:
        plain["response"]["body"]["__data__"]["choices"][0]["message"]["content"] = "z" * (1 << 20)
        for name, r in (("stream.json", stream), ("plain.json", plain)):
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(r, f)
        s, p = request_body(stream), request_body(plain)
        want_stream = "".join(expected(stream)[2]).encode()
        for wrap in (lambda e: e, asan_env):  # the sanitized shim too: the partial writes' arithmetic
            r = run(_unshare() + [PY, "-c", SEQUENCE, json.dumps([s, p, s, p]), "0.002"],
                    env=wrap(shim_env(tmp, LLMREPLAY_LOG="debug")), timeout=180)
            assert r.returncode == 0, r.stderr.decode()[-2000:]
            got = [o[:5] for o in json.loads(r.stdout)]
            assert got[0] == got[2] == [200, "chunked", len(want_stream), want_stream.count(b"data: "), "data: [DONE]\n\n"], got
            assert got[1][:2] == got[3][:2] == [200, None] and got[1][2] == got[3][2] > (1 << 20), got
            assert _inline_count(r.stderr) == 3, r.stderr.decode()[-1500:]
    finally:
        rmtree(tmp)


# Clients that do not read: an unpaced answer the socket did not take is sent on from the
# shared rendered response when they do, never copied per connection (30 clients × 3.3 MB
# would be 100 MB more).
SLOW_READERS = r'''
import json, socket, sys, time
body, n = sys.argv[1].encode(), int(sys.argv[2])
req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("api.openai.com", 80)); s.sendall(req); socks.append(s)
time.sleep(1.5)
peak = hwm()
lens = set()
for s in socks:
    got = b""
    while not got.endswith(b"\r\n0\r\n\r\n"):
        k = s.recv(1 << 20)
        if not k: break
        got += k
    lens.add(len(got))
print(json.dumps({"peak_kb": peak, "lens": sorted(lens)}))
'''


def test_slow_readers_of_large_answers_cost_no_copies():
    stream = _big_stream()
    tmp = tmpdir()
    try:
        with open(os.path.join(tmp, "stream.json"), "w") as f:
            json.dump(stream, f)
        body = request_body(stream)
        out = []
        for n in (1, 30):
            r = run(_unshare() + [PY, "-c", SLOW_READERS, body, str(n)], env=shim_env(tmp), timeout=120)
            assert r.returncode == 0, r.stderr.decode()[-2000:]
            out.append(json.loads(r.stdout))
        assert len(out[1]["lens"]) == 1 and out[1]["lens"][0] > 3 << 20, out
        assert out[1]["peak_kb"] - out[0]["peak_kb"] < 30 << 10, out  # a copy each: ~100 MB more
    finally:
        rmtree(tmp)
