#!/usr/bin/python3
"""One streamed POST (or GET, without BODY) through a stock Python client that takes its proxy
from the environment (HTTPS_PROXY/HTTP_PROXY, NO_PROXY); prints one JSON line: status, the
non-empty lines received, and the error's text if the request failed.

usage: proxied.py requests|httpx|aiohttp URL [BODY.json]"""
import json, sys

which, url = sys.argv[1], sys.argv[2]
body = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else None
out = {"status": None, "lines": [], "error": None}
try:
    if which == "requests":
        import requests
        r = requests.request("POST" if body else "GET", url, json=body, stream=True, timeout=20)
        out["status"] = r.status_code
        out["lines"] = [l.decode() for l in r.iter_lines() if l]
    elif which == "httpx":
        import httpx
        with httpx.Client(timeout=20) as c:  # trust_env is httpx's default
            with c.stream("POST" if body else "GET", url, json=body) as r:
                out["status"] = r.status_code
                out["lines"] = [l.rstrip("\n") for l in r.iter_lines() if l.strip()]
    elif which == "aiohttp":
        import aiohttp, asyncio

        async def main():
            async with aiohttp.ClientSession(trust_env=True) as s:
                async with s.request("POST" if body else "GET", url, json=body) as r:
                    out["status"] = r.status
                    async for line in r.content:
                        if line.strip():
                            out["lines"].append(line.decode().rstrip("\n"))
        asyncio.run(main())
except Exception as e:  # the test looks at the message
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
