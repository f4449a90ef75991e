#!/usr/bin/python3
"""Replays a list of requests through one Python HTTP client (one connection pool, keep-alive)
and writes what it received. Used by the socket-layer tests.

usage: py_client.py urllib|requests|httpx|httpx_async|aiohttp JOBS.json OUT.json
JOBS: [{"method": ..., "url": ..., "body": str or null}]
OUT:  [{"status": int, "ctype": str, "body": base64, "reads": int, "t_first": s, "t_last": s}]"""
import asyncio, base64, json, ssl, sys, time


def result(status, ctype, chunks, t0, times):
    return {"status": status, "ctype": ctype or "", "body": base64.b64encode(b"".join(chunks)).decode(),
            "reads": len(chunks), "t_first": (times[0] - t0) if times else 0, "t_last": (times[-1] - t0) if times else 0}


def headers(job):
    return {"Content-Type": "application/json"} if job["body"] is not None else {}


def data(job):
    return job["body"].encode() if job["body"] is not None else None


def run_urllib(jobs):
    import http.client, urllib.parse
    conns, out = {}, []
    for j in jobs:
        u = urllib.parse.urlsplit(j["url"])
        key = (u.hostname, u.port)
        if key not in conns and u.scheme == "https":
            # the default context: certificates and host names verified as usual
            conns[key] = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=60,
                                                     context=ssl.create_default_context())
        elif key not in conns:
            conns[key] = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
        c = conns[key]
        t0 = time.monotonic()
        c.request(j["method"], u.path + (("?" + u.query) if u.query else ""), body=data(j), headers=headers(j))
        r = c.getresponse()
        chunks, times = [], []
        while True:
            b = r.read1(65536)
            if not b:
                break
            chunks.append(b)
            times.append(time.monotonic())
        r.read()  # http.client wants the response finished before the next request
        r.close()
        out.append(result(r.status, r.getheader("Content-Type"), chunks, t0, times))
        if u.scheme == "https":
            t = c.sock
            out[-1]["tls"] = {"peer": t.getpeercert(), "version": t.version(), "cipher": t.cipher()}
    return out


def run_requests(jobs):
    import requests
    s, out = requests.Session(), []
    for j in jobs:
        t0 = time.monotonic()
        r = s.request(j["method"], j["url"], data=data(j), headers=headers(j), stream=True, timeout=60)
        chunks, times = [], []
        for b in r.raw.stream(65536, decode_content=False):
            chunks.append(b)
            times.append(time.monotonic())
        out.append(result(r.status_code, r.headers.get("Content-Type"), chunks, t0, times))
    return out


def run_httpx(jobs):
    import httpx
    out = []
    with httpx.Client(timeout=60) as c:
        for j in jobs:
            t0 = time.monotonic()
            with c.stream(j["method"], j["url"], content=data(j), headers=headers(j)) as r:
                chunks, times = [], []
                for b in r.iter_raw():
                    chunks.append(b)
                    times.append(time.monotonic())
                out.append(result(r.status_code, r.headers.get("Content-Type"), chunks, t0, times))
    return out


async def run_httpx_async(jobs):
    import httpx
    out = []
    async with httpx.AsyncClient(timeout=60) as c:
        for j in jobs:
            t0 = time.monotonic()
            async with c.stream(j["method"], j["url"], content=data(j), headers=headers(j)) as r:
                chunks, times = [], []
                async for b in r.aiter_raw():
                    chunks.append(b)
                    times.append(time.monotonic())
                out.append(result(r.status_code, r.headers.get("Content-Type"), chunks, t0, times))
    return out


async def run_aiohttp(jobs):
    import aiohttp
    out = []
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        for j in jobs:
            t0 = time.monotonic()
            async with s.request(j["method"], j["url"], data=data(j), headers=headers(j)) as r:
                chunks, times = [], []
                async for b in r.content.iter_any():
                    chunks.append(b)
                    times.append(time.monotonic())
                out.append(result(r.status, r.headers.get("Content-Type"), chunks, t0, times))
    return out


def main():
    client, jobs_file, out_file = sys.argv[1:4]
    jobs = json.load(open(jobs_file))
    fn = {"urllib": run_urllib, "requests": run_requests, "httpx": run_httpx,
          "httpx_async": run_httpx_async, "aiohttp": run_aiohttp}[client]
    out = fn(jobs)
    if asyncio.iscoroutine(out):
        out = asyncio.run(out)
    json.dump(out, open(out_file, "w"))


if __name__ == "__main__":
    main()
