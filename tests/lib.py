"""Shared helpers for the test suite: paths, running clients with the shim, and an independent
Python rendering of what a recording must look like on the wire (the oracle)."""
import contextlib, glob, json, os, re, shutil, subprocess, tempfile, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
LIB = os.path.join(BUILD, "libllmreplay.so")
ASAN_LIB = os.path.join(BUILD, "asan", "libllmreplay.so")
CLI = os.path.join(BUILD, "llmreplay")
TESTS = os.path.join(BUILD, "tests")
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
CORPUS = os.path.join(SHARED, "corpus")
SEED_DIR = os.path.join(SHARED, "seed")
SEED = glob.glob(os.path.join(SEED_DIR, "*.json"))[0] if os.path.isdir(SEED_DIR) else None
EXAMPLES = os.path.join(ROOT, "examples", "recordings")
PY = "/usr/bin/python3"


CACHE = os.path.join(BUILD, "test-cache")  # the suite's own index cache, shared by its tests


def shim_env(dirs=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_")}
    env["LD_PRELOAD"] = LIB
    env["LLMREPLAY_CACHE_DIR"] = CACHE
    if dirs is not None:
        env["LLMREPLAY_DIR"] = ":".join(dirs) if isinstance(dirs, (list, tuple)) else dirs
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def asan_env(env):
    """The same environment with the sanitized shim (ASan must come first in LD_PRELOAD)."""
    rt = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    env = dict(env)
    env["LD_PRELOAD"] = f"{rt}:{ASAN_LIB}"
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0:exitcode=99"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:exitcode=98"
    return env


def run(cmd, env=None, input=None, timeout=120, check=False):
    extra = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}  # never the runner's stdin
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout, **extra)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd[0]} exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return r


def tmpdir():
    d = tempfile.mkdtemp(prefix="llmreplay-test-")
    return d


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)


def corpus_files():
    return sorted(glob.glob(os.path.join(CORPUS, "**", "*.json"), recursive=True))


def load(path):
    with open(path) as f:
        return json.load(f)


# ---- the oracle: what a real server sends for a recording ---------------------------------

OLLAMA = ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/tags", "/api/ps",
          "/api/pull", "/api/show", "/api/version")


def compact(v):
    return json.dumps(v, separators=(",", ":"))


def payload(item):
    if isinstance(item, dict) and "__type__" in item and "__data__" in item:
        return item["__data__"]
    return item


def endpoint_of(rec):
    ep = rec["request"].get("endpoint") or ""
    return {"/chat/completions": "/v1/chat/completions"}.get(ep, ep)


def expected(rec):
    """(status, content_type, [events]) a client must receive for this recording."""
    mapping = rec.get("id_normalization_mapping") or {}
    if mapping:  # llama-stack's rule: every original id (value) becomes its normalized form (key)
        text = json.dumps(rec)
        for norm, orig in mapping.items():
            text = text.replace(orig, norm)
        rec = json.loads(text)
    ep = endpoint_of(rec)
    resp = rec["response"]
    body = resp.get("body")
    ollama = ep in OLLAMA
    if resp.get("is_streaming") and isinstance(body, list):
        evs = []
        for item in body:
            d = payload(item)
            if ollama:
                evs.append(compact(d) + "\n")
            elif ep in ("/v1/responses", "/v1/messages"):
                t = d.get("type") if isinstance(d, dict) else None
                evs.append((f"event: {t}\n" if t else "") + "data: " + compact(d) + "\n\n")
            else:
                evs.append("data: " + compact(d) + "\n\n")
        if resp.get("is_exception"):
            evs.append(None)  # an error event follows: checked separately
        elif not ollama and ep not in ("/v1/responses", "/v1/messages"):
            evs.append("data: [DONE]\n\n")
        ctype = "application/x-ndjson" if ollama else "text/event-stream; charset=utf-8"
        return 200, ctype, evs
    if resp.get("is_exception"):
        ed = resp.get("exception_data") or {}
        return ed.get("status_code", 500), "application/json", [None]
    if isinstance(body, list):
        items = [payload(i) for i in body]
        if ep == "/v1/models":
            text = compact({"object": "list", "data": items})
        elif ep in ("/api/tags", "/api/ps"):
            text = compact({"models": items})
        else:
            text = compact(items)
    else:
        text = compact(payload(body))
    return resp.get("status", 200), "application/json", [text]


def request_url(rec, base="http://localhost:8000"):
    """Where a client would send this recording's request (host ignored by matching)."""
    ep = endpoint_of(rec)
    return base + ep


def wire_body(rec):
    """The body an OpenAI SDK sends for the arguments llama-stack recorded: extra_body merged
    into the top level (its keys win), extra_headers and extra_query sent elsewhere."""
    body = rec["request"]["body"]
    if not isinstance(body, dict):
        return body
    body = dict(body)
    extra = body.pop("extra_body", None)
    body.pop("extra_headers", None)
    body.pop("extra_query", None)
    if isinstance(extra, dict):
        body.update(extra)
    return body


def request_body(rec):
    ep = endpoint_of(rec)
    if ep in ("/v1/models", "/api/tags", "/api/ps", "/api/version"):
        return None
    return compact(wire_body(rec))


def supported(rec):
    return endpoint_of(rec) in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
                                "/v1/responses", "/v1/messages") + OLLAMA


_DEC = re.compile(r"(-?\d+\.\d{4,})")


def canon(v):
    """llama-stack's normalisation (floats to 5 decimals, also inside strings) with number
    spelling unified: an independent model of the shim's matching key."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        t = f"{round(float(v), 5):.5f}".rstrip("0").rstrip(".")
        return "#" + ("0" if t == "-0" else t)
    if isinstance(v, str):
        return _DEC.sub(lambda m: f"{float(m.group(0)):.5f}", v)
    if isinstance(v, list):
        return [canon(x) for x in v]
    return {k: canon(x) for k, x in v.items()}


def hostport(url):
    u = urllib.parse.urlsplit(url)
    if not u.hostname:
        return None
    return f"{u.scheme}://{u.hostname}:{u.port or (443 if u.scheme == 'https' else 80)}"


def every_request(files):
    """Every supported recording as (file, recording, url): a request recorded k times is asked
    k times, and the shim must answer with those recordings in path order."""
    groups = {}
    for f in files:
        rec = load(f)
        if not supported(rec):
            continue
        groups.setdefault(_key(rec), []).append((f, rec, _url(rec)))
    return [it for g in groups.values() for it in g]


def _url(rec):
    return (hostport(rec["request"].get("url", "")) or "http://localhost:8000") + endpoint_of(rec)


def _key(rec):
    """What tells requests apart: the endpoint asked (recordings of the same body under chat
    and completions each answer their own endpoint), the wire body, the host."""
    ep = endpoint_of(rec)
    listing = ep in ("/v1/models", "/api/tags", "/api/ps", "/api/version")
    body = None if listing else json.dumps(canon(wire_body(rec)), sort_keys=True)
    return (ep, body, hostport(rec["request"].get("url", "")) or "http://localhost:8000")


def distinct_requests(files):
    """One (file, recording, url) per distinct request a client can make, and the recording the
    shim must answer it with: the first in path order among those recorded against the host
    the client talks to (the client here talks to the recorded host)."""
    seen, out = set(), []
    for f in files:
        rec = load(f)
        if not supported(rec) or _key(rec) in seen:
            continue
        seen.add(_key(rec))
        out.append((f, rec, _url(rec)))
    return out


def unshare(lo=False):
    """The prefix that runs a command in an empty network namespace (with loopback up when lo),
    or nothing where unprivileged namespaces are not allowed."""
    if run(["unshare", "-rn", "true"]).returncode != 0:
        return []
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'] if lo else ["unshare", "-rn"]


@contextlib.contextmanager
def fake_upstream(*args, script=None):
    """tests/fake_upstream.py (or script) serving on a free loopback port; yields the port."""
    p = subprocess.Popen([PY, script or os.path.join(ROOT, "tests", "fake_upstream.py")] + list(args),
                         stdout=subprocess.PIPE, text=True)
    try:
        yield int(p.stdout.readline())
    finally:
        p.kill()
        p.wait()


def client_jobs(items):
    """The requests of (file, recording, url) items, as tests/clients/py_client.py and
    tests/node/client.mjs take them."""
    return [{"method": "POST" if request_body(rec) is not None else "GET", "url": url, "body": request_body(rec)}
            for f, rec, url in items]


def check_client_results(items, results, ctype=True):
    """Each client result against the recording's expected status, content type and bytes."""
    import base64
    bad = []
    for (f, rec, url), got in zip(items, results):
        status, want_ctype, evs = expected(rec)
        want = "".join(e for e in evs if e is not None).encode()
        body = base64.b64decode(got["body"])
        if got["status"] != status or (ctype and got["ctype"] != want_ctype) or body != want:
            bad.append(f"{f}: status {got['status']} ctype {got['ctype']!r} {len(body)} bytes (want {status} {len(want)})")
    assert len(results) == len(items), (len(results), len(items))
    assert not bad, f"{len(bad)} of {len(items)} differ; first: " + "; ".join(bad[:3])
