#!/usr/bin/python3
"""A small OpenAI- and Ollama-like upstream for the record-mode tests: deterministic answers,
streams with delays, recorded errors, a slow first byte; plain HTTP or HTTPS (test CA).

usage: fake_upstream.py [--tls CERT KEY] [--delay-ms N] [--port N] [--host ADDR]   (prints the port, serves until killed)"""
import argparse, json, time, urllib.parse
from fake_base import JsonHandler, serve

A = argparse.ArgumentParser()
A.add_argument("--tls", nargs=2)
A.add_argument("--delay-ms", type=int, default=20)
A.add_argument("--port", type=int, default=0)
A.add_argument("--host", default="127.0.0.1")
ARGS = A.parse_args()
COUNT = {"n": 0}


def words(msgs):
    last = msgs[-1]["content"] if msgs else ""
    if "count calls" in last:  # a different answer each time: which call this was
        return ["You", " said", ": ", last, f" (call {COUNT['n']})."]
    return ["You", " said", ": ", last, "."]


class H(JsonHandler):
    def send_bytes(self, code, ctype, b, **headers):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.send_header("Set-Cookie", "session=SECRET-COOKIE5")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
        return True

    def raw_paths(self, body):
        """Non-LLM endpoints (issue 13): images, transcriptions (multipart in, binary out),
        files (upload, listing, content) and a streamed SSE run."""
        p, _, q = self.path.partition("?")
        if self.command == "GET" and p.endswith("/v1/files"):
            return self.send_json(200, {"object": "list", "data": [{"id": "file-1", "purpose": urllib.parse.parse_qs(q).get("purpose", [""])[0]}]})
        if self.command == "GET" and p.endswith("/content"):
            blob = bytes(range(256)) * 4
            return self.send_bytes(200, "application/octet-stream", blob, Content_Disposition='attachment; filename="x.bin"')
        if self.command == "DELETE" and "/v1/files/" in p:
            return self.send_json(200, {"id": p.rsplit("/", 1)[1], "object": "file", "deleted": True})
        if p.endswith("/v1/images/generations"):
            req = json.loads(body)
            img = (b"\x89PNG\r\n\x1a\n" + req["prompt"].encode()).hex()
            return self.send_bytes(200, "application/json", json.dumps({"created": 1, "data": [{"b64_json": img}]}, indent=2).encode())
        if p.endswith("/v1/audio/transcriptions") or (self.command == "POST" and p.endswith("/v1/files")):
            ct = self.headers.get("Content-Type", "")
            assert ct.startswith("multipart/form-data"), ct
            if p.endswith("/v1/files"):
                return self.send_json(200, {"id": "file-%d" % len(body), "object": "file", "bytes": len(body)})
            out = b"\x00AUDIO\xff" + bytes(reversed(body[-64:]))
            return self.send_bytes(200, "audio/mpeg", out, Content_Disposition='attachment; filename="speech.mp3"')
        if p.endswith("/v1/threads/runs"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(4):
                ev = ("event: thread.run.step\ndata: " + json.dumps({"step": i}) + "\n\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                self.wfile.flush()
                time.sleep(ARGS.delay_ms / 1000)
            self.wfile.write(b"0\r\n\r\n")
            return True
        return None

    def do_DELETE(self):
        if self.raw_paths(b"") is None:
            self.send_json(404, {"error": {"message": "no such path"}})

    def do_GET(self):
        if self.raw_paths(b"") is not None:
            return
        if self.path.endswith("/v1/models"):
            return self.send_json(200, {"object": "list", "data": [{"id": "fake-1", "object": "model", "created": 1, "owned_by": "me"},
                                                                   {"id": "fake-2", "object": "model", "created": 2, "owned_by": "me"}]})
        self.send_json(404, {"error": {"message": "no such path"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if self.raw_paths(raw) is not None:
            return
        req = json.loads(raw or b"{}")
        COUNT["n"] += 1
        msgs = req.get("messages") or [{"content": req.get("prompt", "")}]
        text = words(msgs)
        if "rate limit me" in json.dumps(req):
            return self.send_json(429, {"error": {"message": "Rate limit reached (fake)", "type": "requests", "code": "rate_limit_exceeded"}})
        if "slow first byte" in json.dumps(req):
            time.sleep(0.5)
        if self.path.endswith("/api/generate"):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, w in enumerate(text + [""]):
                line = json.dumps({"model": req.get("model"), "created_at": "2025-01-01T00:00:00Z", "response": w, "done": i == len(text)}) + "\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line.encode()))
                self.wfile.flush()
                time.sleep(ARGS.delay_ms / 1000)
            self.wfile.write(b"0\r\n\r\n")
            return
        if req.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, w in enumerate(text):
                ev = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": req.get("model"),
                      "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
                data = ("data: " + json.dumps(ev, separators=(",", ":")) + "\n\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(ARGS.delay_ms / 1000)
            done = b"data: [DONE]\n\n"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
            return
        self.send_json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": req.get("model"),
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text)}, "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": len(text), "total_tokens": 5 + len(text)}})


serve(H, ARGS.host, ARGS.port, ARGS.tls)
