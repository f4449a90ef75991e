#!/usr/bin/python3
"""Seed corpora of the fuzz targets, made at run time from ../shared (never kept in the repo):
recordings, their request and response bodies, HTTP requests built from them, URLs, ALPN lists.

usage: tests/fuzz/seeds.py OUTDIR [MAX_PER_TARGET]   (writes OUTDIR/NAME/ for every target)"""
import glob, hashlib, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
MAX_LEN = 65536  # the targets run with -max_len=65536


def recordings(limit):
    files = sorted(glob.glob(os.path.join(SHARED, "**", "*.json"), recursive=True))
    files = [f for f in files if os.path.getsize(f) <= MAX_LEN]
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def put(out, name, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_LEN:
        return
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def raw_events(rec):
    """The response as the wire carried it: SSE or NDJSON events, or one JSON body."""
    resp = rec.get("response") or {}
    body = resp.get("body")
    if resp.get("is_streaming") and isinstance(body, list):
        datas = [json.dumps(e.get("__data__") if isinstance(e, dict) else e) for e in body]
        if "/api/" in rec["request"].get("url", ""):
            return "application/x-ndjson", "".join(d + "\n" for d in datas)
        return "text/event-stream", "".join(f"data: {d}\n\n" for d in datas) + "data: [DONE]\n\n"
    data = body.get("__data__") if isinstance(body, dict) else body
    return "application/json", json.dumps(data, indent=1)


def main():
    out = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    for f in recordings(limit):
        text = open(f, "rb").read()
        put(out, "recording", text)
        put(out, "jspan", text)
        try:
            rec = json.loads(text)
            req = rec["request"]
        except (ValueError, KeyError, TypeError):
            continue
        url, method = req.get("url", ""), req.get("method", "POST")
        body = json.dumps(req.get("body"))
        put(out, "jspan", body)
        put(out, "pyjson", f"{url}\0{body}")
        put(out, "ops", url)
        put(out, "ops", req.get("endpoint", ""))
        put(out, "match", f"{method}\0{url}\0{body}")
        edited = json.dumps(dict(req.get("body") or {}, temperature=0.123456789)) if isinstance(req.get("body"), dict) else body
        put(out, "match", f"{method}\0{url}\0{edited}")
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
        head = f"{method} {path} HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\n"
        put(out, "http", f"{head}Content-Length: {len(body)}\r\n\r\n{body}")
        chunked = "".join(f"{len(body[i:i + 500]):x}\r\n{body[i:i + 500]}\r\n" for i in range(0, len(body), 500))
        put(out, "http", f"{head}Transfer-Encoding: chunked\r\n\r\n{chunked}0\r\n\r\n")
        put(out, "responder", f"{head}Content-Length: {len(body)}\r\n\r\n{body}")
        put(out, "responder", f"{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked}0\r\n\r\n")
        put(out, "responder", f"{head}Content-Length: {len(body)}\r\n\r\n{body}" * 2)
        ctype, resp = raw_events(rec)
        sel = bytes([hashlib.sha1(text).digest()[0] & 0x3f])
        put(out, "record", sel + f"{ctype}\0{resp}\0{body}".encode())
        if "generativelanguage" in url or "aiplatform" in url or ":generateContent" in url or "/raw" in url:
            put(out, "gemini", f"{url}\0{body}\0{json.dumps((rec.get('response') or {}).get('body'))}")
        put(out, "gemini", f"{url}\0{body}\0")
        put(out, "canon", f"{body}\0{edited}\0")
        put(out, "canon", f"{body}\0{body}\0messages.content,model")
    for alpn in [b"\x02h2\x08http/1.1", b"\x02h2", b"\x08http/1.1", b"\x00\x08http/1.1", b"\x03h2"]:
        put(out, "ops", alpn)
    for g in ["https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent?key=K&alt=sse",
              "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:streamGenerateContent"]:
        put(out, "gemini", f'{g}\0{{"contents":[{{"role":"user","parts":[{{"text":"hi"}}]}}]}}\0{{"candidates":[],"sdk_http_response":{{}},"usage_metadata":{{"prompt_token_count":1}}}}')
        put(out, "gemini", f'{g}\0--b0undary\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0undary--\0aGVsbG8=')
    put(out, "responder", "GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n")
    put(out, "responder", "POST /v1/chat/completions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}")
    # the index: one file written by the target itself from the small store
    ixdir = os.path.join(out, "index")
    os.makedirs(ixdir, exist_ok=True)
    exe = os.path.join(ROOT, "build", "fuzz", "fuzz_index")
    env = dict(os.environ, LR_FUZZ_SEED_OUT=os.path.join(ixdir, "small-store"))
    subprocess.run([exe], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
