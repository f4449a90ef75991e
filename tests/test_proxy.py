"""The proxy path: Go net/http (cgo and static, default and custom transport) under `llmreplay
run`, `llmreplay serve` as a base URL and as a forward proxy (curl, the npm openai SDK), pass-
through and recording through it, and Python clients configured with a proxy answered in-process.
Every client runs inside `unshare -rn`, with lo up only where llmreplay's proxy needs it."""
import glob, json, os, shutil, subprocess, threading
from lib import CACHE, CLI, LIB, PY, asan_env, ROOT, SEED, SEED_DIR, expected, load, request_body, rmtree, run, tmpdir

GO_SRC = os.path.join(ROOT, "tests", "go", "client.go")
GO_OUT = os.path.join(ROOT, "build", "tests", "go")
DRIVER = os.path.join(ROOT, "tests", "clients", "serve_driver.py")
NODE_DIR = os.path.join(ROOT, "tests", "node")
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
MISS = {"model": "gpt-4o", "messages": [{"role": "user", "content": "a question nobody recorded"}], "stream": True}
_go_lock = threading.Lock()
_go = {}


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_") and k.upper() not in PROXY_VARS}
    env["LLMREPLAY_CACHE_DIR"] = CACHE
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _netns(cmd, lo=True):
    if run(["unshare", "-rn", "true"]).returncode != 0:
        return None
    return ["unshare", "-rn", "sh", "-c", ("ip link set lo up && " if lo else "") + 'exec "$@"', "sh"] + cmd


def _go_bins():
    """The Go client built with cgo (dynamic) and with CGO_ENABLED=0 (static); None without Go."""
    with _go_lock:
        if "bins" in _go:
            return _go["bins"]
        go = shutil.which("go") or ("/usr/lib/go/bin/go" if os.path.exists("/usr/lib/go/bin/go") else None)
        if not go:
            _go["bins"] = None
            return None
        tmp = tmpdir()
        try:
            os.makedirs(GO_OUT, exist_ok=True)
            shutil.copy(GO_SRC, os.path.join(tmp, "main.go"))
            with open(os.path.join(tmp, "go.mod"), "w") as f:
                f.write("module llmreplaytest\ngo 1.19\n")
            bins = {}
            for name, cgo in (("cgo", "1"), ("static", "0")):
                out = os.path.join(GO_OUT, name)
                env = _env(GOCACHE=os.path.join(tmp, "cache"), GOPATH=os.path.join(tmp, "gopath"), CGO_ENABLED=cgo,
                           HOME=tmp, GOFLAGS="", GO111MODULE="on")
                r = subprocess.run([go, "build", "-o", out, "main.go"], env=env, cwd=tmp, capture_output=True, timeout=600)
                assert r.returncode == 0, r.stderr.decode()[-2000:]
                bins[name] = out
            _go["bins"] = bins
            return bins
        finally:
            rmtree(tmp)


def _seed_lines():
    return [e.strip() for e in expected(load(SEED))[2]]


def _req_file(tmp, body):
    p = os.path.join(tmp, "req.json")
    with open(p, "w") as f:
        f.write(body if isinstance(body, str) else json.dumps(body))
    return p


def _go_run(bin_, transport, body, *run_opts, lo=True, env=None):
    tmp = tmpdir()
    try:
        cmd = _netns([CLI, "run", "-d", SEED_DIR] + list(run_opts) + ["--", bin_, _req_file(tmp, body), transport], lo=lo)
        if cmd is None:
            return None
        r = run(cmd, env=env or _env(), timeout=120)
        out = r.stdout.decode().splitlines()
        status = int(out[0].split()[1]) if out and out[0].startswith("status ") else None
        events = [(float(l.split(" ", 1)[0]), l.split(" ", 1)[1]) for l in out[1:]]
        return r.returncode, status, events, r.stderr.decode()
    finally:
        rmtree(tmp)


def test_go_net_http_cgo_and_static_stream_the_seed():
    bins = _go_bins()
    if not bins:
        print("SKIP: no Go toolchain (apt-get install golang-go)")
        return
    body = request_body(load(SEED))
    for name, b in bins.items():
        for transport in ("default", "custom"):
            res = _go_run(b, transport, body)
            if res is None:
                print("SKIP: unshare -rn is not permitted here")
                return
            rc, status, events, err = res
            assert rc == 0 and status == 200, (name, transport, rc, err)
            assert [e for _, e in events] == _seed_lines(), (name, transport, events[:3], err)


def test_go_paced_stream_is_incremental_and_miss_is_404_with_strict():
    bins = _go_bins()
    if not bins:
        print("SKIP: no Go toolchain")
        return
    res = _go_run(bins["static"], "default", request_body(load(SEED)), "--pace", "50")
    if res is None:
        print("SKIP: unshare -rn is not permitted here")
        return
    rc, status, events, err = res
    assert rc == 0 and status == 200 and len(events) > 10, (rc, err)
    assert events[-1][0] - events[0][0] >= 50 * (len(events) - 3), events  # the first event came well before the last
    rc, status, events, err = _go_run(bins["cgo"], "custom", MISS, "--strict")
    assert status == 404 and "no recording matches" in events[0][1], (status, events, err)
    assert rc == 3 and "--strict: 1 request had no recording" in err, (rc, err)


def test_run_proxy_says_when_loopback_is_down():
    bins = _go_bins()
    if not bins:
        print("SKIP: no Go toolchain")
        return
    res = _go_run(bins["static"], "default", request_body(load(SEED)), lo=False)
    if res is None:
        print("SKIP: unshare -rn is not permitted here")
        return
    rc, status, events, err = res
    lines = [l for l in err.splitlines() if "loopback" in l]
    assert rc != 0 and len(lines) == 1 and lines[0].startswith("llmreplay: the loopback interface is down"), err
    assert "ip link set lo up" in lines[0], lines


def test_run_starts_the_proxy_only_when_needed_and_filters_no_proxy():
    show = ["sh", "-c", 'echo "[$HTTPS_PROXY][$http_proxy][$NO_PROXY][$no_proxy]"']
    r = run([CLI, "run", "-d", SEED_DIR, "--"] + show, env=_env(NO_PROXY="corp.example"), check=True)
    assert r.stdout.decode().strip() == "[][][corp.example][]", r.stdout  # a dynamic program: unchanged
    env = _env(NO_PROXY="corp.example,.openai.com,10.0.0.0/8", no_proxy="api.openai.com:443,corp.example")
    r = run([CLI, "run", "-d", SEED_DIR, "--proxy", "--"] + show, env=env, check=True)
    hp, lp, np_, lnp = r.stdout.decode().strip()[1:-1].split("][")
    assert hp.startswith("http://127.0.0.1:") and lp == hp, r.stdout
    assert np_ == lnp == "corp.example,10.0.0.0/8", r.stdout  # the user's entries, minus the recorded host's
    err = r.stderr.decode()
    assert "NO_PROXY entry .openai.com covers the replayed host api.openai.com" in err, err
    assert "NO_PROXY entry api.openai.com:443 covers" in err, err


def test_go_records_through_runs_proxy_then_replays():
    """record then replay, a Go program under `run`: the upstream is on a non-loopback address
    (Go never proxies loopback), made in the namespace on lo."""
    bins = _go_bins()
    if not bins:
        print("SKIP: no Go toolchain")
        return
    tmp = tmpdir()
    try:
        rec, req = os.path.join(tmp, "rec"), _req_file(tmp, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        up = os.path.join(ROOT, "tests", "fake_upstream.py")
        script = (f"ip link set lo up && ip addr add 10.9.9.9/32 dev lo && {{ {PY} {up} --host 10.9.9.9 > {tmp}/port & }} && F=$! && "
                  f"for i in $(seq 50); do [ -s {tmp}/port ] && break; sleep 0.1; done; P=$(cat {tmp}/port); "
                  f"export LLMREPLAY_HOSTS=10.9.9.9:$P URL=http://10.9.9.9:$P/v1/chat/completions; "
                  f"{CLI} run --mode record -d {rec} -- {bins['static']} {req} custom; kill $F; "
                  f"echo '<<>>'; {CLI} run --strict -d {rec} -- {bins['cgo']} {req}")
        if run(["unshare", "-rn", "true"]).returncode != 0:
            print("SKIP: unshare -rn is not permitted here")
            return
        r = run(["unshare", "-rn", "sh", "-c", script], env=_env(), timeout=180)
        live, replay = r.stdout.decode().split("<<>>\n")
        assert r.returncode == 0 and "You said: hi." in live, (r.stdout, r.stderr.decode()[-2000:])
        assert len(glob.glob(os.path.join(rec, "*.json"))) == 1, r.stderr.decode()[-2000:]
        strip = lambda out: [l.split(" ", 1)[1] for l in out.splitlines()[1:]]
        assert replay.splitlines()[0] == "status 200" and strip(replay) == strip(live), (live, replay)
    finally:
        rmtree(tmp)


def _serve(cmd, *serve_args, lo=True, fake=False, env=None):
    args = [PY, DRIVER] + (["--lo"] if lo else []) + (["--fake"] if fake else []) + [CLI, cmd] + list(serve_args)
    full = ["unshare", "-rn"] + args if run(["unshare", "-rn", "true"]).returncode == 0 else None
    if full is None:
        return None
    r = run(full, env=env or _env(), timeout=180)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_serve_with_curl_as_base_url_and_as_proxy():
    tmp = tmpdir()
    try:
        req, miss = _req_file(tmp, request_body(load(SEED))), os.path.join(tmp, "miss.json")
        with open(miss, "w") as f:
            json.dump(MISS, f)
        ca = run([CLI, "ca"], env=_env(), check=True).stdout.decode().strip()
        post = f"-H 'Content-Type: application/json' -d @{req}"
        cmd = " ; echo '<<>>' ; ".join([
            f"curl -sSN http://$SERVE/v1/chat/completions {post}",                                    # base URL
            f"curl -sSN --proxy http://$SERVE --cacert {ca} https://api.openai.com/v1/chat/completions {post}",  # CONNECT + TLS
            f"curl -sSN --proxy http://$SERVE http://api.openai.com/v1/chat/completions {post}",      # absolute-form
            f"curl -s -o /dev/null -w '%{{http_code}}' http://$SERVE/v1/chat/completions -d @{miss}",  # a miss
            "curl -s -w ' %{http_connect}' --proxy http://$SERVE https://example.com/",               # other hosts refused
            "curl -s -w ' %{http_code}' --proxy http://$SERVE http://example.com/",
        ])
        out = _serve(cmd, "-d", SEED_DIR, "--strict")
        if out is None:
            print("SKIP: unshare -rn is not permitted here")
            return
        parts = out["out"].split("<<>>\n")
        want = "".join(e for e in expected(load(SEED))[2])
        for p in parts[:3]:
            assert p == want, (p[:300], out["err"])
        assert parts[3] == "404", parts[3]
        assert parts[4].endswith(" 403") and parts[5].endswith(" 403"), parts[4:]
        assert "not a recorded LLM host" in parts[5], parts[5]
        assert "llmreplay: serving 1 recording on http://127.0.0.1:" in out["banner"], out
        err = out["serve_err"]
        assert err.count("refused a proxy request for example.com:443") == 1, err
        assert "serve stopped" in err and "1 miss" in err and out["serve_rc"] == 3, (out["serve_rc"], err)  # --strict
    finally:
        rmtree(tmp)


def test_serve_npm_openai_sdk_base_url_paced_and_miss():
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "openai")):
        print("SKIP: tests/node/node_modules is missing (make deps)")
        return
    body = load(SEED)["request"]["body"]
    sdk = os.path.join(NODE_DIR, "sdk.mjs")
    a_stream = json.dumps({"baseURL": "http://SERVE/v1", "body": body})
    a_miss = json.dumps({"baseURL": "http://SERVE/v1", "body": dict(MISS, stream=False)})
    cmd = (f"node {sdk} openai-stream \"$(echo '{a_stream}' | sed s/SERVE/$SERVE/)\"; "
           f"node {sdk} openai-error \"$(echo '{a_miss}' | sed s/SERVE/$SERVE/)\"")
    tmp = tmpdir()
    try:
        script = os.path.join(tmp, "c.sh")
        with open(script, "w") as f:
            f.write(cmd)
        out = _serve(f"sh {script}", "-d", SEED_DIR, "--pace", "50")
    finally:
        rmtree(tmp)
    if out is None:
        print("SKIP: unshare -rn is not permitted here")
        return
    assert out["rc"] == 0, out["err"]
    stream, miss = (json.loads(l) for l in out["out"].strip().splitlines()[-2:])
    text = "".join((e.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
                   for e in (json.loads(x[6:]) for x in _seed_lines() if x != "data: [DONE]"))
    assert stream["text"] == text, stream
    assert stream["last_ms"] - stream["first_ms"] >= 50 * (stream["chunks"] - 3), stream
    assert miss["status"] == 404 and "no recording matches" in miss["message"], miss


def test_serve_passes_other_hosts_through_in_live_mode_and_records_through_the_proxy():
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        post = f"-H 'Content-Type: application/json' -d '{body}'"
        cmd = " ; echo '<<>>' ; ".join([
            "curl -sS --proxy http://$SERVE http://127.0.0.1:$FAKE/v1/models",                  # absolute-form, spliced
            f"curl -sS --proxytunnel --proxy http://$SERVE http://127.0.0.1:$FAKE/v1/chat/completions {post}",  # CONNECT, spliced
        ])
        out = _serve(cmd, "--mode", "live", fake=True)
        if out is None:
            print("SKIP: unshare -rn is not permitted here")
            return
        models, chat = out["out"].split("<<>>\n")
        assert json.loads(models)["object"] == "list", (models, out["err"], out["serve_err"])
        assert "You said: hi." in chat, (chat, out["err"])
        # llmreplay's proxy chains to the one it was itself given (here the fake upstream, which
        # answers the absolute-form request as a proxy would): no DNS needed for the far host
        out = _serve("curl -sS --proxy http://$SERVE http://far.example/v1/models", "--mode", "live", fake=True,
                     env=_env(HTTP_PROXY="http://127.0.0.1:{FAKE}"))
        assert json.loads(out["out"])["object"] == "list", (out["out"], out["serve_err"])
        # record: the fake upstream's host is named in LLMREPLAY_HOSTS, so the proxy answers it
        # (through the engine, upstream) and writes the exchange
        cmd = f"curl -sS --proxy http://$SERVE http://127.0.0.1:$FAKE/v1/chat/completions {post}"
        out = _serve(cmd, "--mode", "record", "-d", rec, fake=True, env=_env(LLMREPLAY_HOSTS="127.0.0.1:{FAKE}"))
        assert "You said: hi." in out["out"], (out["out"], out["serve_err"])
        files = glob.glob(os.path.join(rec, "*.json"))
        assert len(files) == 1 and load(files[0])["request"]["body"]["messages"][0]["content"] == "hi", files
    finally:
        rmtree(tmp)


def _proxied(client, url, body, lo=False, **env):
    tmp = tmpdir()
    try:
        args = [PY, os.path.join(ROOT, "tests", "clients", "proxied.py"), client, url]
        if body is not None:
            args.append(_req_file(tmp, body))
        cmd = _netns(args, lo=lo)
        if cmd is None:
            return None
        r = run(cmd, env=_env(LD_PRELOAD=LIB, LLMREPLAY_DIR=SEED_DIR, **env), timeout=120)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        return json.loads(r.stdout.decode().strip().splitlines()[-1]), r.stderr.decode()
    finally:
        rmtree(tmp)


def test_python_clients_with_a_proxy_in_the_environment_are_answered_in_process():
    """HTTPS_PROXY names a proxy that does not exist (an address, or a name no DNS knows): the
    shim answers the CONNECT to the recorded host itself, and the hooked TLS session runs
    through the tunnel (certificate checks on, no CA variables)."""
    url = "https://api.openai.com/v1/chat/completions"
    body = load(SEED)["request"]["body"]
    for proxy in ("http://10.255.1.1:3128", "http://proxy.corp.example:3128"):
        for client in ("requests", "httpx", "aiohttp"):
            res = _proxied(client, url, body, HTTPS_PROXY=proxy)
            if res is None:
                print("SKIP: unshare -rn is not permitted here")
                return
            out, err = res
            assert out["status"] == 200 and out["lines"] == _seed_lines(), (proxy, client, out, err)
    # a miss is the documented 404, through the tunnel
    out, err = _proxied("requests", url, dict(MISS, stream=False), HTTPS_PROXY="http://10.255.1.1:3128")
    assert out["status"] == 404 and "no recording matches" in out["lines"][0], out
    # NO_PROXY keeps working as the client implements it: a direct connection, answered as usual
    out, err = _proxied("requests", url, body, HTTPS_PROXY="http://10.255.1.1:3128", NO_PROXY="api.openai.com",
                        LLMREPLAY_LOG="debug")
    assert out["status"] == 200 and out["lines"] == _seed_lines(), out
    assert "connect to api.openai.com:443" in err, err


def test_proxied_python_other_hosts_go_to_the_real_proxy_or_are_refused():
    # the real proxy does not exist: the client hears so from the CONNECT's answer
    out, err = _proxied("requests", "https://example.com/", None, HTTPS_PROXY="http://10.255.1.1:3128")
    assert out["status"] is None and "502" in out["error"], out
    assert "llmreplay: cannot pass a request for a host without recordings on to 10.255.1.1:3128: " in err, err
    out, err = _proxied("requests", "https://example.com/", None, HTTPS_PROXY="http://10.255.1.1:3128",
                        LLMREPLAY_EGRESS="deny")
    assert out["status"] is None and "403" in out["error"], out
    assert err.count("refused a proxy request for example.com:443") == 1 and "LLMREPLAY_EGRESS=deny" in err, err


def test_proxied_python_passes_other_hosts_through_the_real_proxy():
    """The real proxy is `llmreplay serve --mode live` (on loopback, in the namespace), the
    other host a fake upstream: the shim hands the client's bytes to the proxy as they were."""
    client = os.path.join(ROOT, "tests", "clients", "proxied.py")
    cmd = (f"HTTP_PROXY=http://$SERVE HTTPS_PROXY=http://$SERVE LD_PRELOAD={LIB} LLMREPLAY_DIR={SEED_DIR} "
           f"{PY} {client} requests http://127.0.0.1:$FAKE/v1/models")
    out = _serve(cmd, "--mode", "live", fake=True)
    if out is None:
        print("SKIP: unshare -rn is not permitted here")
        return
    res = json.loads(out["out"].strip().splitlines()[-1])
    assert res["status"] == 200 and json.loads(res["lines"][0])["object"] == "list", (res, out["err"], out["serve_err"])


def test_proxied_python_under_asan():
    env = asan_env(_env(LLMREPLAY_DIR=SEED_DIR, HTTPS_PROXY="http://proxy.corp.example:3128", LLMREPLAY_CACHE_DIR=CACHE))
    tmp = tmpdir()
    try:
        client = os.path.join(ROOT, "tests", "clients", "proxied.py")
        for c in ("requests", "aiohttp"):
            cmd = _netns([PY, client, c, "https://api.openai.com/v1/chat/completions", _req_file(tmp, load(SEED)["request"]["body"])], lo=False)
            if cmd is None:
                print("SKIP: unshare -rn is not permitted here")
                return
            r = run(cmd, env=env, timeout=120)
            assert r.returncode == 0, r.stderr.decode()[-3000:]
            out = json.loads(r.stdout.decode().strip().splitlines()[-1])
            assert out["status"] == 200 and out["lines"] == _seed_lines(), (c, out, r.stderr.decode()[-2000:])
    finally:
        rmtree(tmp)
