"""One regression test per bug found in review (socket layer, responder, DNS, fork)."""
import json, os, subprocess
from lib import *


def _big_stream_dir(tmp, events=40, size=450_000):
    rec = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    chunk = rec["response"]["body"][1]
    body = []
    for i in range(events):
        c = json.loads(json.dumps(chunk))
        c["__data__"]["choices"][0]["delta"]["content"] = ("%03d" % i) + "x" * size
        body.append(c)
    rec["response"]["body"] = body
    with open(os.path.join(tmp, "big.json"), "w") as f:
        json.dump(rec, f)
    return rec


BIG = r'''
import socket, sys, threading
body = sys.argv[1].encode(); want = int(sys.argv[2])
def one(res, i):
    s = socket.create_connection(("localhost", 8000)); s.settimeout(20)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    got = b""
    try:
        while not got.endswith(b"0\r\n\r\n"):
            d = s.recv(1 << 20)
            if not d: break
            got += d
    except socket.timeout:
        pass
    res[i] = len(got)
res = [0] * 6
ts = [threading.Thread(target=one, args=(res, i)) for i in range(6)]
[t.start() for t in ts]; [t.join() for t in ts]
print(res, want)
assert all(r > want for r in res), res
'''


def test_events_larger_than_the_write_backlog_do_not_stall():
    tmp = tmpdir()
    try:
        rec = _big_stream_dir(tmp)
        want = sum(len(e) for e in expected(rec)[2])
        r = run([PY, "-c", BIG, request_body(rec), str(want)], env=shim_env(tmp, LLMREPLAY_HOSTS="localhost:8000"), timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr[-1500:])
    finally:
        rmtree(tmp)


EPOLL_FIRST = r'''
import socket, select
s = socket.socket(); s.setblocking(False)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ep = select.epoll(); ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLET)
try: s.connect(("127.0.0.1", 11434))
except BlockingIOError: pass
ev = ep.poll(5)
print(len(ev), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
'''


def test_epoll_registration_before_connect_survives_the_swap():
    r = run([PY, "-c", EPOLL_FIRST], env=shim_env(EXAMPLES), check=True)
    assert r.stdout.split() == [b"1", b"1", b"0"], r.stdout


HALF_CLOSE = r'''
import socket, sys
body = sys.argv[1].encode()
req = b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
s = socket.create_connection(("localhost", 11434)); s.settimeout(10)
s.sendall(req + req); s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
print(got.count(b"HTTP/1.1 200 OK"))
'''


def test_requests_before_a_half_close_are_answered():
    chat = load(os.path.join(EXAMPLES, "ollama-chat.json"))
    r = run([PY, "-c", HALF_CLOSE, request_body(chat)], env=shim_env(EXAMPLES), check=True, timeout=30)
    assert r.stdout.strip() == b"2", r.stdout


HTTP10 = r'''
import socket, sys
body = sys.argv[1].encode()
s = socket.create_connection(("localhost", 8000)); s.settimeout(10)
s.sendall(b"POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
head = got.split(b"\r\n\r\n")[0].lower()
print(b"transfer-encoding" in head, got.endswith(b"data: [DONE]\n\n"))
'''


def test_http10_keep_alive_stream_is_never_chunked():
    rec = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    r = run([PY, "-c", HTTP10, request_body(rec)], env=shim_env(EXAMPLES, LLMREPLAY_HOSTS="localhost:8000"), check=True)
    assert r.stdout.split() == [b"False", b"True"], r.stdout


OVERFLOW = r'''
import socket, sys, threading
body = sys.argv[1].encode()
s = socket.create_connection(("localhost", 8000)); s.settimeout(20)
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
def flood():
    try: s.sendall(b"X" * (3 << 20))
    except OSError: pass
threading.Thread(target=flood, daemon=True).start()
got = b""
while True:
    try: d = s.recv(65536)
    except OSError: break
    if not d: break
    got += d
print(got.count(b"HTTP/1.1 "), b"data: [DONE]" in got)
'''


def test_oversized_pipelined_input_never_interrupts_an_answer():
    rec = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    r = run([PY, "-c", OVERFLOW, request_body(rec)],
            env=shim_env(EXAMPLES, LLMREPLAY_HOSTS="localhost:8000", LLMREPLAY_PACE_MS=40, LLMREPLAY_MAX_REQUEST_MB=1),
            check=True, timeout=60)
    assert r.stdout.split() == [b"1", b"True"], r.stdout


FORK_DNS = r'''
import os, socket, threading, signal
# Python's own lazy imports (idna for host names) must not be in progress at fork(): that is
# CPython's import lock, not the shim's. Warm them up first.
socket.getaddrinfo("localhost", 80); "api.openai.com".encode("idna")
stop = False
def resolve():
    while not stop: socket.getaddrinfo("api.openai.com", 443)
ts = [threading.Thread(target=resolve) for _ in range(4)]
[t.start() for t in ts]
bad = 0
for i in range(60):
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)
        socket.getaddrinfo("api.openai.com", 443)
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(st) != 0:
        bad += 1
        print("child", i, "status", os.waitstatus_to_exitcode(st), flush=True)
stop = True
[t.join() for t in ts]
print(bad)
'''


def test_fork_while_resolving_intercepted_names():
    r = run([PY, "-c", FORK_DNS], env=shim_env(SEED_DIR), check=True, timeout=120)
    assert r.stdout.strip().endswith(b"\n0") or r.stdout.strip() == b"0", r.stdout


def test_egress_deny_leaves_udp_alone():
    code = ("import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.connect(('192.0.2.1', 53)); print('udp ok')")
    r = run([PY, "-c", code], env=shim_env(EXAMPLES, LLMREPLAY_EGRESS="deny"), check=True)
    assert r.stdout.strip() == b"udp ok" and r.stderr == b"", r
