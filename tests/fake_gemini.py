#!/usr/bin/python3
"""A small Gemini- and Vertex-like upstream for the record-mode tests: generateContent,
streamGenerateContent (SSE, no [DONE]), embedContent, batchEmbedContents, predict, countTokens,
the model listing and an OAuth token endpoint; every call needs a key or a bearer token.

usage: fake_gemini.py KEY   (prints the port, serves until killed)"""
import json, sys, time
from urllib.parse import parse_qs, urlparse
from fake_base import JsonHandler, serve

KEY = sys.argv[1]
TOKEN = "ya29.fake-token-" + KEY  # what the token endpoint hands out: must never reach a file


def said(req):
    texts = [p.get("text", "") for c in req.get("contents", []) for p in c.get("parts", [])]
    return ["You", " said", ": ", texts[-1] if texts else "", "."]


def vector(text):
    return [round((sum(map(ord, text)) % 97) / 97 + i / 10, 4) for i in range(4)]


class H(JsonHandler):
    json_type = "application/json; charset=UTF-8"

    def authorized(self):
        q = parse_qs(urlparse(self.path).query)
        return (self.headers.get("x-goog-api-key") == KEY or q.get("key") == [KEY]
                or self.headers.get("Authorization") == "Bearer " + TOKEN)

    def deny(self):
        self.send_json(401, {"error": {"code": 401, "message": "API key not valid (fake)", "status": "UNAUTHENTICATED"}})

    def do_GET(self):
        if not self.authorized():
            return self.deny()
        if urlparse(self.path).path.endswith("/models"):  # two pages
            if "pageToken" in parse_qs(urlparse(self.path).query):
                return self.send_json(200, {"models": [{"name": "models/fake-embedding", "displayName": "Fake embedding"}]})
            return self.send_json(200, {"models": [{"name": "models/fake-gemini", "displayName": "Fake"}],
                                        "nextPageToken": "page2"})
        self.send_json(404, {"error": {"code": 404, "message": "no such path", "status": "NOT_FOUND"}})

    def answer(self, model, words, last):
        chunk = {"candidates": [{"content": {"parts": [{"text": "".join(words)}], "role": "model"}}],
                 "modelVersion": model, "responseId": "fake-response"}
        if last:
            chunk["candidates"][0]["finishReason"] = "STOP"
            chunk["usageMetadata"] = {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}
        return chunk

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        path = urlparse(self.path).path
        if path.endswith("/token"):
            return self.send_json(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
        if not self.authorized():
            return self.deny()
        req = json.loads(raw or b"{}")
        model, _, verb = path.rsplit("/", 1)[-1].partition(":")
        if "rate limit me" in json.dumps(req):
            return self.send_json(429, {"error": {"code": 429, "message": "Resource exhausted (fake)", "status": "RESOURCE_EXHAUSTED"}})
        words = said(req)
        if verb == "generateContent":
            return self.send_json(200, self.answer(model, words, True))
        if verb == "streamGenerateContent":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, w in enumerate(words):
                ev = ("data: " + json.dumps(self.answer(model, [w], i == len(words) - 1)) + "\r\n\r\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                self.wfile.flush()
                time.sleep(0.02)
            self.wfile.write(b"0\r\n\r\n")
            return
        if verb == "embedContent":
            return self.send_json(200, {"embedding": {"values": vector(json.dumps(req["content"]))}})
        if verb == "batchEmbedContents":
            return self.send_json(200, {"embeddings": [{"values": vector(json.dumps(r["content"]))} for r in req["requests"]]})
        if verb == "predict":
            return self.send_json(200, {"predictions": [{"embeddings": {"values": vector(json.dumps(i["content"])),
                                                        "statistics": {"token_count": 3, "truncated": False}}}
                                                        for i in req["instances"]]})
        if verb == "countTokens":
            return self.send_json(200, {"totalTokens": sum(len(w) for w in words)})
        self.send_json(404, {"error": {"code": 404, "message": "no such method", "status": "NOT_FOUND"}})


serve(H)
