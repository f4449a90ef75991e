"""HTTP/2: clients that require it (prior knowledge, or ALPN offering only h2) get h2 from the
responder, one event per DATA frame; clients offering HTTP/1.1 keep it. curl CLI, nghttp,
Python httpx (http1=False) and Node's http2 module, each inside `unshare -rn`."""
import json, os, re, subprocess
from lib import *
from test_sockets import _unshare
from test_tls import _ca_file

STREAM = os.path.join(EXAMPLES, "openai-chat-stream.json")
CHAT = os.path.join(EXAMPLES, "openai-chat.json")
URL = "api.openai.com/v1/chat/completions"


def _body(path):
    return request_body(load(path))


def _want(path):
    return "".join(e for e in expected(load(path))[2] if e is not None)


def _curl(env, *args, offline=True):
    r = run((_unshare() if offline else []) + ["curl", "-sS", "-v"] + list(args), env=env)
    assert r.returncode == 0, r.stderr.decode()[-1500:]
    return r.stdout.decode(), r.stderr.decode()


def _post(url, body):
    return [url, "-H", "Content-Type: application/json", "--data-binary", body]


def test_curl_prior_knowledge_over_plain_http():
    """curl --http2-prior-knowledge through the socket layer: a stream, a JSON answer with its
    length, a miss (the documented 404) and a path that is no LLM call, all over HTTP/2."""
    env = shim_env(EXAMPLES, LLMREPLAY_LAYERS="sockets")
    out, err = _curl(env, "--http2-prior-knowledge", *_post("http://" + URL, _body(STREAM)))
    assert "< HTTP/2 200" in err and "content-type: text/event-stream; charset=utf-8" in err, err[-1500:]
    assert out == _want(STREAM), out[-300:]
    out, err = _curl(env, "--http2-prior-knowledge", *_post("http://" + URL, _body(CHAT)))
    assert "< HTTP/2 200" in err and f"content-length: {len(_want(CHAT))}" in err, err[-1500:]
    assert "x-llmreplay-recording: " + CHAT in err, err[-1500:]
    assert out == _want(CHAT), out
    miss = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "never recorded"}]})
    out, err = _curl(env, "--http2-prior-knowledge", *_post("http://" + URL, miss))
    assert "< HTTP/2 404" in err and "x-should-retry: false" in err, err[-1500:]
    assert "never recorded" in json.loads(out)["error"]["message"], out
    out, err = _curl(env, "--http2-prior-knowledge", "http://api.openai.com/v1/elsewhere")
    assert "< HTTP/2 404" in err and "llmreplay_not_an_llm_endpoint" in out, (err[-800:], out)
    # curl --http2 over http:// asks to upgrade (h2c): not offered, the answer is HTTP/1.1
    out, err = _curl(env, "--http2", *_post("http://" + URL, _body(STREAM)))
    assert "Upgrade: h2c" in err and "< HTTP/1.1 200" in err and out == _want(STREAM), err[-1500:]


def test_concurrent_streams_on_one_connection():
    """nghttp -m 32: 32 streams at once on one connection, each answered in full. (Debian's curl
    7.88 cannot multiplex with --parallel, against any server: error 16.)"""
    tmp = tmpdir()
    try:
        bf = os.path.join(tmp, "body.json")
        with open(bf, "w") as f:
            f.write(_body(STREAM))
        r = run(_unshare() + ["nghttp", "-m", "32", "-d", bf, "-H", "content-type: application/json", "http://" + URL],
                env=shim_env(EXAMPLES))
        assert r.returncode == 0, r.stderr.decode()[-1500:]
        out = r.stdout.decode()  # the streams' DATA frames interleave
        assert len(out) == len(_want(STREAM)) * 32 and out.count("data: [DONE]") == 32, len(out)
    finally:
        rmtree(tmp)


def _frames(text):
    """nghttp -v: (seconds, length) of each DATA frame received."""
    return [(float(t), int(n)) for t, n in re.findall(r"\[\s*([\d.]+)\] recv DATA frame <length=(\d+)", text)]


def test_one_event_per_data_frame_paced():
    """nghttp shows the frames: each DATA frame is one event of the recording, and with
    LLMREPLAY_PACE_MS the first arrives well before the last."""
    tmp = tmpdir()
    try:
        bf = os.path.join(tmp, "body.json")
        with open(bf, "w") as f:
            f.write(_body(STREAM))
        events = [e for e in expected(load(STREAM))[2] if e is not None]
        env = shim_env(EXAMPLES, LLMREPLAY_PACE_MS=40)
        r = run(_unshare() + ["nghttp", "-v", "-d", bf, "-H", "content-type: application/json", "http://" + URL], env=env)
        assert r.returncode == 0, r.stderr.decode()[-1500:]
        frames = _frames(r.stdout.decode())
        assert [n for t, n in frames] == [len(e.encode()) for e in events], frames
        assert frames[-1][0] - frames[0][0] >= 0.04 * (len(events) - 3), frames
    finally:
        rmtree(tmp)


def test_four_paced_h2_streams_finish_every_time():
    """nghttp -m 4 with LLMREPLAY_PACE_MS: four paced streams on one session finish every time.
    The responder's timer took a negative time left for 'none': an overdue h2 stream's due
    time must count as due now, not as no timer (issue 17; the stall was seen over HTTP/1.1)."""
    tmp = tmpdir()
    try:
        bf = os.path.join(tmp, "body.json")
        with open(bf, "w") as f:
            f.write(_body(STREAM))
        env = shim_env(EXAMPLES, LLMREPLAY_PACE_MS=5)
        cmd = _unshare() + ["nghttp", "-m", "4", "-d", bf, "-H", "content-type: application/json", "http://" + URL]
        for i in range(8):
            try:
                r = run(cmd, env=env, timeout=20)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"four paced h2 streams stalled (run {i + 1})")
            assert r.returncode == 0, r.stderr.decode()[-1500:]
            assert r.stdout.decode().count("data: [DONE]") == 4, r.stdout[-300:]
    finally:
        rmtree(tmp)


def test_curl_over_https_keeps_http11_when_both_are_offered():
    """curl --http2 offers h2 and http/1.1: HTTP/1.1 is selected, hooked and terminated TLS."""
    for layers in ("sockets,tls", "sockets"):
        env = shim_env(EXAMPLES, LLMREPLAY_LAYERS=layers)
        out, err = _curl(env, "--http2", "--cacert", _ca_file(env), *_post("https://" + URL, _body(STREAM)))
        assert "ALPN: offers h2,http/1.1" in err and "ALPN: server accepted http/1.1" in err, (layers, err[-1500:])
        assert "< HTTP/1.1 200" in err and out == _want(STREAM), (layers, err[-1500:])


HTTPX = r'''
import json, sys, threading, time, httpx
url, body, miss = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = {}
with httpx.Client(http1=False, http2=True) as c:
    t0, ts, parts = time.monotonic(), [], []
    with c.stream("POST", url, json=body) as r:
        out["version"], out["status"] = r.http_version, r.status_code
        for chunk in r.iter_raw():
            ts.append(time.monotonic() - t0)
            parts.append(chunk.decode())
    out["body"], out["reads"], out["spread"] = "".join(parts), len(ts), ts[-1] - ts[0]
    r = c.post(url, json=miss)
    out["miss"] = [r.http_version, r.status_code, r.headers.get("x-should-retry"), r.json()["error"]["message"]]
    got = []
    def one():
        got.append(c.post(url, json=body).text)
    th = [threading.Thread(target=one) for _ in range(16)]
    [t.start() for t in th]
    [t.join() for t in th]
    out["concurrent"] = got
print(json.dumps(out))
'''


HTTPX_ASYNC = r'''
import asyncio, json, sys, httpx
async def main():
    async with httpx.AsyncClient(http1=False, http2=True) as c:
        rs = await asyncio.gather(*[c.post(sys.argv[1], content=sys.argv[2]) for _ in range(20)])
        print(json.dumps(sorted({(r.http_version, r.status_code, r.text) for r in rs})))
asyncio.run(main())
'''


def test_httpx_http2_only_over_http_and_https():
    """httpx http1=False: prior knowledge over http://, ALPN h2 only over hooked https://; a
    paced stream arrives incrementally, a miss is the documented 404, threads share the
    connection."""
    env = shim_env(EXAMPLES, LLMREPLAY_PACE_MS=30)
    miss = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "never recorded"}], "stream": True})
    n = len(expected(load(STREAM))[2])
    for scheme in ("http", "https"):
        r = run(_unshare() + [PY, "-c", HTTPX, f"{scheme}://{URL}", _body(STREAM), miss], env=env, timeout=120)
        assert r.returncode == 0, (scheme, r.stderr.decode()[-2000:])
        got = json.loads(r.stdout)
        assert got["version"] == "HTTP/2" and got["status"] == 200 and got["body"] == _want(STREAM), (scheme, got)
        assert got["reads"] >= n // 2 and got["spread"] >= 0.03 * (n - 3), (scheme, got)
        assert got["miss"][:3] == ["HTTP/2", 404, "false"] and "never recorded" in got["miss"][3], got["miss"]
        assert got["concurrent"] == [_want(STREAM)] * 16, scheme
    # asyncio: the TLS session runs over memory BIOs (anyio), 20 streams at once
    r = run(_unshare() + [PY, "-c", HTTPX_ASYNC, "https://" + URL, _body(CHAT)], env=env, check=True, timeout=120)
    assert json.loads(r.stdout) == [["HTTP/2", 200, _want(CHAT)]], r.stdout[:300]


NODE_H2 = r'''
const http2 = require("node:http2");
const rd = (x) => (x.startsWith("@") ? require("node:fs").readFileSync(x.slice(1), "utf8") : x);
const [url, body, want, n] = process.argv.slice(1).map(rd);
const s = http2.connect(url);
s.on("error", (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(1); });
const one = () => new Promise((resolve) => {
  const req = s.request({ ":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json" });
  let text = "", reads = 0, first = 0, last = 0, status = 0;
  req.on("response", (h) => { status = h[":status"]; });
  req.on("data", (d) => { text += d; reads++; last = Date.now(); first = first || last; });
  req.on("end", () => resolve({ status, ok: text === want, reads, spread: last - first }));
  req.end(body);
});
Promise.all(Array.from({ length: +n }, one)).then((res) => {
  console.log(JSON.stringify({ alpn: s.alpnProtocol, res }));
  s.close();
});
'''


def test_node_http2_module_through_terminated_tls():
    """Node's http2 client (ALPN h2 only; Node's OpenSSL is not hooked, so the helper selects
    h2): 100 concurrent streams on one session, and a paced one arrives event by event."""
    env = shim_env(EXAMPLES)
    env["NODE_EXTRA_CA_CERTS"] = _ca_file(env)
    r = run(_unshare() + ["node", "-e", NODE_H2, "https://api.openai.com", _body(STREAM), _want(STREAM), "100"], env=env,
            check=True, timeout=120)
    got = json.loads(r.stdout)
    assert got["alpn"] == "h2" and all(x["status"] == 200 and x["ok"] for x in got["res"]), r.stdout[:600]
    assert len(got["res"]) == 100
    n = len(expected(load(STREAM))[2])
    r = run(_unshare() + ["node", "-e", NODE_H2, "https://api.openai.com", _body(STREAM), _want(STREAM), "1"],
            env=dict(env, LLMREPLAY_PACE_MS="30"), check=True, timeout=120)
    x = json.loads(r.stdout)["res"][0]
    assert x["ok"] and x["reads"] >= n // 2 and x["spread"] >= 30 * (n - 3), x


def _big_recording(d, words=300000):
    """A JSON answer of about 2 MB to a request of about 2 MB: both directions exceed every
    default HTTP/2 flow-control window."""
    text = " ".join(f"w{i}" for i in range(words))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "echo " + text}]}
    rec = {"test_id": "tests/test_h2.py::big", "request": {
        "method": "POST", "url": "https://api.openai.com/v1/v1/chat/completions", "headers": {}, "body": body,
        "endpoint": "/v1/chat/completions", "model": "gpt-4o-mini"},
        "response": {"body": {"__type__": "openai.types.chat.chat_completion.ChatCompletion", "__data__": {
            "id": "chatcmpl-big", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}},
            "is_streaming": False}}
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "big.json")
    with open(path, "w") as f:
        json.dump(rec, f)
    return path


def test_large_bodies_honour_flow_control():
    tmp = tmpdir()
    try:
        path = _big_recording(os.path.join(tmp, "rec"))
        body, want = _body(path), _want(path)
        assert len(body) > 1 << 21 and len(want) > 1 << 21, (len(body), len(want))
        bf = os.path.join(tmp, "body.json")
        with open(bf, "w") as f:
            f.write(body)
        env = shim_env(os.path.join(tmp, "rec"), LLMREPLAY_LAYERS="sockets")
        out, err = _curl(env, "--http2-prior-knowledge", *_post("http://" + URL, "@" + bf))
        assert "< HTTP/2 200" in err and out == want, (err[-800:], len(out))
        out, err = _curl(dict(env, LLMREPLAY_MAX_REQUEST_MB="1"), "--http2-prior-knowledge", *_post("http://" + URL, "@" + bf))
        assert "< HTTP/2 413" in err and "LLMREPLAY_MAX_REQUEST_MB" in out, (err[-800:], out)
        env = shim_env(os.path.join(tmp, "rec"))
        env["NODE_EXTRA_CA_CERTS"] = _ca_file(env)
        wf = os.path.join(tmp, "want")
        with open(wf, "w") as f:
            f.write(want)
        r = run(_unshare() + ["node", "-e", NODE_H2, "https://api.openai.com", "@" + bf, "@" + wf, "4"], env=env, check=True,
                timeout=120)
        got = json.loads(r.stdout)
        assert all(x["status"] == 200 and x["ok"] for x in got["res"]), r.stdout[:600]
    finally:
        rmtree(tmp)


MAPS = r'''
import http.client, json, sys, httpx
def loaded():
    return "libnghttp2" in open("/proc/self/maps").read()
c = http.client.HTTPConnection("api.openai.com")
c.request("POST", "/v1/chat/completions", sys.argv[1], {"Content-Type": "application/json"})
before = (c.getresponse().status, loaded())
with httpx.Client(http1=False, http2=True) as h:
    after = (h.post("http://api.openai.com/v1/chat/completions", content=sys.argv[1]).status_code, loaded())
print(json.dumps([before, after]))
'''


def test_libnghttp2_is_loaded_only_for_an_h2_connection():
    r = run(_unshare() + [PY, "-c", MAPS, _body(CHAT)], env=shim_env(EXAMPLES), check=True)
    assert json.loads(r.stdout) == [[200, False], [200, True]], r.stdout


RAW = r'''
import json, socket, sys, time
import h2.connection, h2.events, h2.config

body = sys.argv[1].encode()
def conn():
    s = socket.create_connection(("api.openai.com", 80))
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c
def req(s, c):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "POST"), (":path", "/v1/chat/completions"), (":scheme", "http"), (":authority", "api.openai.com"), ("content-type", "application/json")])
    c.send_data(sid, body, end_stream=True)
    s.sendall(c.data_to_send())
    return sid
def events(s, c):
    d = s.recv(65536)
    if not d: return None
    evs = c.receive_data(d)
    s.sendall(c.data_to_send())
    return evs
out = {}
s, c = conn()
a = req(s, c)
got = 0
while got < 2:  # two events of the paced stream, then cancel it
    for e in events(s, c):
        if isinstance(e, h2.events.DataReceived) and e.stream_id == a:
            got += 1
            c.acknowledge_received_data(e.flow_controlled_length, a)
c.reset_stream(a)
b = req(s, c)
data, ended, after_reset = b"", False, 0
while not ended:
    for e in events(s, c):
        if isinstance(e, h2.events.DataReceived):
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            if e.stream_id == b: data += e.data
            else: after_reset += 1
        if isinstance(e, h2.events.StreamEnded) and e.stream_id == b: ended = True
out["second"] = data.decode()
out["after_reset"] = after_reset
# GOAWAY from the client: the server closes
c.close_connection()
s.sendall(c.data_to_send())
s.settimeout(5)
while True:
    evs = events(s, c)
    if evs is None: break
out["closed_after_goaway"] = True
# garbage after the preface: GOAWAY PROTOCOL_ERROR, then close
s2 = socket.create_connection(("api.openai.com", 80))
s2.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x09\x00\x00\x00\x00\x00junk")
s2.settimeout(5)
buf = b""
while True:
    d = s2.recv(65536)
    if not d: break
    buf += d
c2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c2.initiate_connection()
gone = [e for e in c2.receive_data(buf) if isinstance(e, h2.events.ConnectionTerminated)]
out["bad_frames"] = [int(gone[0].error_code)] if gone else None
# a client hanging up mid-stream, then a new connection is served in full
s3, c3 = conn()
req(s3, c3)
events(s3, c3)
s3.close()
s4, c4 = conn()
d = req(s4, c4)
data, ended = b"", False
while not ended:
    for e in events(s4, c4):
        if isinstance(e, h2.events.DataReceived):
            c4.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            data += e.data
        ended |= isinstance(e, h2.events.StreamEnded)
out["after_hangup"] = data.decode()
print(json.dumps(out))
'''


def test_reset_goaway_bad_frames_and_hang_ups():
    """A raw h2 client (python3-h2): a stream reset mid-answer stops (the next stream on the
    connection is answered in full), GOAWAY from the client closes, garbage after the preface
    gets GOAWAY PROTOCOL_ERROR, and a client hanging up mid-stream leaves the responder fine."""
    env = shim_env(EXAMPLES, LLMREPLAY_PACE_MS=50)
    for e in (env, asan_env(env)):
        r = run(_unshare() + [PY, "-c", RAW, _body(STREAM)], env=e, timeout=60)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        got = json.loads(r.stdout)
        assert got == {"second": _want(STREAM), "after_reset": 0, "closed_after_goaway": True, "bad_frames": [1],
                       "after_hangup": _want(STREAM)}, r.stdout[:300]


def test_record_over_h2_then_replay_offline():
    """record mode over HTTP/2: the upstream answer streams to the client as it arrives and is
    written; replayed with no network, the client gets the same bytes over h2. With the
    upstream gone, record-if-missing answers a new request with the 502 saying why."""
    from test_record import CHAT, upstream
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        body = json.dumps(dict(CHAT, stream=True))
        with upstream() as port:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            env = shim_env(rec, LLMREPLAY_MODE="record", LLMREPLAY_LAYERS="sockets", LLMREPLAY_HOSTS=f"127.0.0.1:{port}")
            live, err = _curl(env, "--http2-prior-knowledge", *_post(url, body), offline=False)
            assert "< HTTP/2 200" in err and "data: [DONE]" in live, err[-1500:]
        assert len(os.listdir(rec)) == 1, os.listdir(rec)
        env = dict(env, LLMREPLAY_MODE="replay")
        replay, err = _curl(env, "--http2-prior-knowledge", *_post(url, body))
        assert "< HTTP/2 200" in err and replay == live, (err[-1500:], replay[:200])
        env = dict(env, LLMREPLAY_MODE="record-if-missing")
        out, err = _curl(env, "--http2-prior-knowledge", *_post(url, json.dumps(dict(CHAT, messages=[]))))
        assert "< HTTP/2 502" in err and "llmreplay_upstream_error" in out, (err[-1500:], out)
        assert len(os.listdir(rec)) == 1
    finally:
        rmtree(tmp)
