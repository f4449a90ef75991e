"""Fault injection (LLMREPLAY_FAULTS, llmreplay run --fault): real clients, unmodified, see
the failures a real server would give them, with nothing but the recordings (unshare -rn)."""
import json, os, time

from lib import CLI, EXAMPLES, PY, SEED, SEED_DIR, load, request_body, rmtree, run, shim_env, tmpdir
from lib import unshare as _unshare
from test_sockets import NODE_DIR

FAULTS_JS = os.path.join(NODE_DIR, "faults.mjs")
SEED_BODY = json.loads(request_body(load(SEED)))
ANTHROPIC = os.path.join(EXAMPLES, "anthropic-messages-stream.json")
SEED_TEXT = "The planet with rings around it that has a name starting with the letter \"S\" is Saturn."


def _sdk(sdk, rules, args, dirs=SEED_DIR, extra=()):
    """Run tests/node/faults.mjs under llmreplay run with these rules; its JSON line and the fault log."""
    tmp = tmpdir()
    try:
        log = os.path.join(tmp, "faults.jsonl")
        cmd = [CLI, "run", "-d", dirs, "--fault-log", log, *extra]
        for r in rules:
            cmd += ["--fault", r]
        r = run(cmd + ["--"] + _unshare() + ["node", FAULTS_JS, sdk, json.dumps(args)], env=shim_env(), timeout=120)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        out = json.loads(r.stdout.decode().strip().splitlines()[-1])
        lines = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
        return out, lines, r
    finally:
        rmtree(tmp)


def test_openai_sdk_retries_a_429_then_streams_the_recording():
    out, log, _ = _sdk("openai", ["chat:nth=1:status=429"], {"body": SEED_BODY})
    assert out.get("text") == SEED_TEXT, out
    assert out["requests"] == 2, out
    assert len(log) == 1 and log[0]["rule"] == "chat:nth=1:status=429" and log[0]["action"] == "status=429", log
    assert log[0]["request"]["model"] == "gpt-4o" and log[0]["n"] == 1, log


def test_openai_sdk_timeout_fires_on_a_stall():
    t0 = time.monotonic()
    out, log, _ = _sdk("openai", ["chat:stall"], {"body": SEED_BODY, "timeout": 800, "maxRetries": 0})
    assert out.get("error") == "APIConnectionTimeoutError", out
    assert time.monotonic() - t0 < 30 and len(log) == 1
    # a stall after two events for a while: the stream then goes on to its end
    out, _, _ = _sdk("openai", ["chat:stall-after=2:stall-for=300ms"], {"body": SEED_BODY})
    assert out.get("text") == SEED_TEXT, out


def test_openai_sdk_raises_on_a_reset_after_3_events():
    out, log, _ = _sdk("openai", ["chat:reset-after=3"], {"body": SEED_BODY, "maxRetries": 0})
    assert out.get("error") and out["chunks"] == 3 and out["requests"] == 1, out
    out, _, _ = _sdk("openai", ["chat:error-after=2"], {"body": SEED_BODY, "maxRetries": 0})
    assert out.get("error") == "APIError" and "Sorry about that" in out["message"] and out["chunks"] == 2, out
    out, _, _ = _sdk("openai", ["chat:malformed=2"], {"body": SEED_BODY, "maxRetries": 0})
    assert out.get("error") == "SyntaxError" and out["chunks"] == 1, out


def test_anthropic_sdk_retries_a_529_overloaded():
    body = load(ANTHROPIC)["request"]["body"]
    out, log, _ = _sdk("anthropic", ["messages:nth=1:status=529"], {"body": body}, dirs=EXAMPLES)
    assert out.get("text") == "Bonjour le monde!" and out["requests"] == 2, out
    assert len(log) == 1 and log[0]["action"] == "status=529", log
    out, _, _ = _sdk("anthropic", ["messages:error-after=2"], {"body": body, "maxRetries": 0}, dirs=EXAMPLES)
    assert out.get("error") == "APIError" and "overloaded_error" in out["message"], out


PY_STREAM = r'''
import json, sys
client, url, body = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10
lines, err = 0, None
try:
    if client == "requests":
        import requests
        with requests.post(url, json=body, stream=True, timeout=timeout) as r:
            for line in r.iter_lines():
                lines += line.startswith(b"data:")
    else:
        import httpx
        with httpx.stream("POST", url, json=body, timeout=timeout) as r:
            for line in r.iter_lines():
                lines += line.startswith("data:")
except Exception as e:
    err = type(e).__name__ + ": " + str(e)
print(json.dumps({"lines": lines, "error": err}))
'''


def test_python_requests_and_httpx_see_the_reset_and_the_truncated_stream():
    for client in ("requests", "httpx"):
        for url in ("http://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/chat/completions"):
            got = {}
            for rule in ("chat:reset-after=3", "chat:truncate", "chat:delay=50", "chat:stall-after=2"):
                env = shim_env(SEED_DIR, LLMREPLAY_FAULTS=rule)
                r = run(_unshare() + [PY, "-c", PY_STREAM, client, url, json.dumps(SEED_BODY), "0.7"], env=env, timeout=60)
                got[rule] = json.loads(r.stdout)
            where = (client, url)
            assert got["chat:delay=50"] == {"lines": 24, "error": None}, (where, got)
            reset = got["chat:reset-after=3"]
            assert reset["lines"] == 3 and reset["error"], (where, got)
            if url.startswith("http:"):  # through TLS, Python's ssl reports a reset as a ragged EOF
                assert "reset" in reset["error"].lower(), (where, got)
            trunc = got["chat:truncate"]
            assert trunc["error"] and trunc["lines"] >= 21, (where, got)
            assert "reset" not in trunc["error"].lower(), (where, got)  # an EOF mid-chunk, not a reset
            stall = got["chat:stall-after=2"]  # the client's read timeout gives up
            assert stall["lines"] == 2 and "timed out" in stall["error"].lower(), (where, got)


CURL_CASES = [  # rule, extra curl options, exit status
    ("chat:nth=1:status=429", [], 0),
    ("status=503", ["-f"], 22),
    ("reset", [], 56),
    ("chat:reset-after=3", [], 56),
    ("chat:reset-after-bytes=100", [], 56),
    ("chat:truncate", [], 18),
    ("chat:stall-after=2", ["-m", "1"], 28),
    ("chat:stall", ["-m", "1"], 28),
    ("chat:stall-after=1", ["-y", "1", "-Y", "1"], 28),  # curl --speed-time: gives up on its own
    ("chat:error-after=2", [], 0),
    ("chat:malformed", [], 0),
]


def test_curl_exit_codes_through_the_libcurl_and_socket_layers():
    body = request_body(load(SEED))
    CA = run([CLI, "ca", "--bundle"], env=shim_env(), check=True).stdout.decode().strip()
    # the libcurl layer; the socket layer; hooked TLS; TLS terminated by the helper
    layers = [("curl,sockets,tls", "https"), ("sockets", "http"), ("sockets,tls", "https"), ("sockets", "https")]
    for lay, scheme in layers:
        for rule, opts, want in CURL_CASES:
            env = shim_env(SEED_DIR, LLMREPLAY_FAULTS=rule, LLMREPLAY_LAYERS=lay, LLMREPLAY_BIN=CLI)
            if lay == "sockets" and scheme == "https":
                opts = [*opts, "--cacert", CA]
            cmd = ["curl", "-sS", "-N", *opts, f"{scheme}://api.openai.com/v1/chat/completions",
                   "-H", "Content-Type: application/json", "-d", body]
            r = run(_unshare() + cmd, env=env, timeout=60)
            assert r.returncode == want, (lay, rule, r.returncode, r.stderr.decode()[-500:])
            if rule == "chat:nth=1:status=429":
                assert b"rate_limit_exceeded" in r.stdout, r.stdout[:300]
            if rule == "chat:error-after=2":
                assert r.stdout.count(b"data: ") == 3 and b'"error"' in r.stdout and b"[DONE]" not in r.stdout
    # the status's own headers, as the SDKs read them
    env = shim_env(SEED_DIR, LLMREPLAY_FAULTS="chat:status=429:retry-after=7")
    r = run(_unshare() + ["curl", "-sS", "-i", "https://api.openai.com/v1/chat/completions", "-d", body], env=env)
    head = r.stdout.decode().lower()
    assert "http/1.1 429" in head and "retry-after: 7" in head and "x-ratelimit-remaining-requests: 0" in head, head[:600]


PY_LOOP = r'''
import json, sys, urllib.request, urllib.error
url, body, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
seen = []
for i in range(n):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})) as r:
            r.read()
            seen.append(r.status)
    except urllib.error.HTTPError as e:
        seen.append(e.code)
    except Exception as e:
        seen.append(type(e).__name__)
print(json.dumps(seen))
'''


def test_p_with_a_seed_gives_the_same_faults_in_two_runs():
    body = request_body(load(SEED))
    def once(seed, rule):
        env = shim_env(SEED_DIR, LLMREPLAY_FAULTS=rule, LLMREPLAY_SEED=seed)
        r = run(_unshare() + [PY, "-c", PY_LOOP, "http://api.openai.com/v1/chat/completions", body, "40"], env=env)
        assert r.returncode == 0, r.stderr.decode()[-1000:]
        return json.loads(r.stdout)
    a, b = once(7, "chat:p=0.3:status=503"), once(7, "chat:p=0.3:status=503")
    assert a == b and 503 in a and 200 in a, a
    c, d = once(3, "model=gpt-4o:p=0.1:reset-after=3"), once(3, "model=gpt-4o:p=0.1:reset-after=3")
    assert c == d and 200 in c and any(isinstance(x, str) for x in c), c


def test_bad_rules_are_refused_with_the_grammar():
    for bad in ("chat:nth=0:status=429", "chat:explode", "chat", "status=200", "chat:status=429:reset", "p=2:reset"):
        r = run([CLI, "run", "-d", SEED_DIR, "--fault", bad, "--", "true"], env=shim_env())
        err = r.stderr.decode()
        assert r.returncode == 2 and f"fault rule '{bad}'" in err and "selectors:" in err, (bad, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("llmreplay: "), err
    r = run([CLI, "run", "-d", SEED_DIR, "--", "true"], env=shim_env(LLMREPLAY_FAULTS="reset,chat:bogus=1"))
    assert r.returncode == 2 and "'chat:bogus=1'" in r.stderr.decode(), r.stderr
    for good in ("chat:nth=1:status=429", "chat:reset-after=3", "chat:stall-after=2", "model=gpt-4o:p=0.1:reset-after=3",
                 "status=503", "path=/v1/*:host=api.openai.com:every=2:delay=1s:event-delay=5ms:jitter=5"):
        r = run([CLI, "run", "-d", SEED_DIR, "--fault", good, "--", "true"], env=shim_env())
        assert r.returncode == 0, (good, r.stderr)
    # without the CLI: the shim says so once and serves the request without that rule
    env = shim_env(SEED_DIR, LLMREPLAY_FAULTS="chat:bogus")
    r = run(_unshare() + ["curl", "-sS", "https://api.openai.com/v1/chat/completions", "-d", request_body(load(SEED))], env=env)
    assert r.returncode == 0 and b"[DONE]" in r.stdout and r.stderr.count(b"fault rule 'chat:bogus'") == 1, r.stderr


def test_strict_reports_a_rule_that_never_fired():
    body = request_body(load(SEED))
    cmd = ["curl", "-sS", "https://api.openai.com/v1/chat/completions", "-d", body]
    r = run([CLI, "run", "-d", SEED_DIR, "--strict", "--fault", "embeddings:status=500", "--fault", "chat:delay=1",
             "--"] + _unshare() + cmd, env=shim_env())
    err = r.stderr.decode()
    assert r.returncode == 3 and "fault rule 'embeddings:status=500' never fired" in err and "chat:delay=1" not in err, err
    r = run([CLI, "run", "-d", SEED_DIR, "--strict", "--fault", "chat:delay=1", "--"] + _unshare() + cmd, env=shim_env())
    assert r.returncode == 0, r.stderr


def test_speed_delay_and_event_delay():
    body = request_body(load(SEED))
    def total(**extra):
        env = shim_env(SEED_DIR, **extra)
        r = run(_unshare() + ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_total}",
                              "https://api.openai.com/v1/chat/completions", "-d", body], env=env)
        assert r.returncode == 0, r.stderr
        return [float(x) for x in r.stdout.split()]
    assert total(LLMREPLAY_PACE_MS=40)[1] > 0.8  # 23 gaps
    assert total(LLMREPLAY_PACE_MS=40, LLMREPLAY_SPEED=4)[1] < 0.6
    assert total(LLMREPLAY_PACE_MS=40, LLMREPLAY_SPEED=0)[1] < 0.3
    first, _ = total(LLMREPLAY_FAULTS="chat:delay=400ms")
    assert first >= 0.35, first
    assert total(LLMREPLAY_FAULTS="chat:event-delay=30:jitter=10")[1] > 0.6


ASAN_RULES = [  # rule, the libcurl result of each of 4 identical requests
    ("chat:every=2:reset-after=3", [0, 56, 0, 56]),
    ("chat:first=1:truncate", [18, 0, 0, 0]),
    ("chat:malformed=2:event-delay=2:jitter=2", [0, 0, 0, 0]),
    ("chat:error-after=1", [0, 0, 0, 0]),
    ("chat:nth=3:status=429", [0, 0, 0, 0]),
    ("chat:reset-after-bytes=333", [56, 56, 56, 56]),
    ("chat:stall-after=1:stall-for=30", [0, 0, 0, 0]),
    ("chat:delay=5:reset", [56, 56, 56, 56]),
]


def _asan_client(mode, rule, tmp):
    from lib import TESTS, asan_env
    body = os.path.join(tmp, "body.json")
    with open(body, "w") as f:
        f.write(request_body(load(SEED)))
    jf = os.path.join(tmp, "jobs")
    with open(jf, "w") as f:
        for k in range(4):
            f.write(f"POST\thttps://api.openai.com/v1/chat/completions\t{body}\t{tmp}/out{k}\n")
    env = asan_env(shim_env(SEED_DIR, LLMREPLAY_FAULTS=rule))
    r = run([os.path.join(TESTS, "asan_replay_client"), mode, jf], env=env, timeout=120)
    assert r.returncode in (0, 1), (mode, rule, r.returncode, r.stderr.decode()[-3000:])
    rcs = []
    for k in range(4):
        data = open(f"{tmp}/out{k}", "rb").read()
        rcs.append(int(data[data.rindex(b"END "):].split()[1]))
    return rcs


def test_faults_under_asan_libcurl_easy_multi_and_sockets():
    tmp = tmpdir()
    try:
        for rule, want in ASAN_RULES:
            assert _asan_client("easy", rule, tmp) == want, ("easy", rule)
            assert sorted(_asan_client("multi", rule, tmp)) == sorted(want), ("multi", rule)
        from lib import asan_env
        for rule in ("chat:reset-after=3", "chat:truncate", "chat:malformed", "chat:stall-after=1:stall-for=20",
                     "status=529", "chat:error-after=2:event-delay=1:jitter=1"):
            env = asan_env(shim_env(SEED_DIR, LLMREPLAY_FAULTS=rule))
            r = run(_unshare() + [PY, "-c", PY_STREAM, "requests", "http://api.openai.com/v1/chat/completions",
                                  json.dumps(SEED_BODY)], env=env, timeout=60)
            assert r.returncode == 0 and b"ERROR: AddressSanitizer" not in r.stderr, (rule, r.stderr.decode()[-3000:])
    finally:
        rmtree(tmp)


def test_run_speed_scales_the_recorded_timing():
    rec = load(SEED)
    n = len(rec["response"]["body"])
    rec["response"]["chunk_times_ms"] = [i * 60.0 for i in range(n)]  # recorded 60 ms apart
    tmp = tmpdir()
    try:
        with open(os.path.join(tmp, "timed.json"), "w") as f:
            json.dump(rec, f)
        def total(*opts):
            cmd = [CLI, "run", "-d", tmp, *opts, "--"] + _unshare() + [
                "curl", "-sS", "-o", "/dev/null", "-w", "%{time_total}", "https://api.openai.com/v1/chat/completions",
                "-d", request_body(rec)]
            r = run(cmd, env=shim_env())
            assert r.returncode == 0, r.stderr
            return float(r.stdout)
        recorded = (n - 1) * 0.060
        assert total("--speed", "1") >= recorded * 0.9
        assert total("--speed", "4") < recorded / 2
        assert total("--speed=0") < recorded / 4
        r = run([CLI, "run", "-d", tmp, "--speed", "fast", "--", "true"], env=shim_env())
        assert r.returncode == 2 and "--speed fast is not valid" in r.stderr.decode(), r.stderr
    finally:
        rmtree(tmp)


def test_each_provider_gets_its_own_error_shapes():
    def curl(rec_name, url, rule, *opts):
        rec = load(os.path.join(EXAMPLES, rec_name))
        env = shim_env(EXAMPLES, LLMREPLAY_FAULTS=rule)
        r = run(_unshare() + ["curl", "-sS", "-i", *opts, url, "-H", "Content-Type: application/json",
                              "-d", request_body(rec)], env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.decode()
    out = curl("ollama-chat.json", "http://localhost:11434/api/chat", "ollama:status=503")
    assert out.startswith("HTTP/1.1 503") and out.endswith('{"error":"server busy, please try again.  maximum pending requests exceeded"}'), out
    out = curl("anthropic-messages-stream.json", "https://api.anthropic.com/v1/messages", "messages:status=429:retry-after=3")
    assert "retry-after: 3" in out and "anthropic-ratelimit-requests-remaining: 0" in out, out
    assert out.rstrip().endswith('"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit (injected by llmreplay)."}}'), out
    out = curl("anthropic-messages-stream.json", "https://api.anthropic.com/v1/messages", "status=529")
    assert out.startswith("HTTP/1.1 529 Overloaded") and '"type":"overloaded_error"' in out, out
    out = curl("responses-stream.json", "https://api.openai.com/v1/responses", "responses:error-after=1", "-N")
    assert out.count("event: ") == 2 and "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\"" in out, out
    out = curl("openai-chat.json", "https://api.openai.com/v1/chat/completions", "path=/v1/chat/*:model=gpt-4*:status=500")
    assert out.startswith("HTTP/1.1 500") and '"type":"server_error"' in out and "x-request-id: " in out, out
    out = curl("openai-chat.json", "https://api.openai.com/v1/chat/completions", "host=api.anthropic.com:status=500")
    assert out.startswith("HTTP/1.1 200"), out  # the host selector did not match


def test_each_fault_is_logged_once_at_info():
    env = shim_env(SEED_DIR, LLMREPLAY_FAULTS="chat:reset-after=3:event-delay=5", LLMREPLAY_LOG="info", LLMREPLAY_SEED=1)
    r = run(_unshare() + ["curl", "-sS", "https://api.openai.com/v1/chat/completions", "-d", request_body(load(SEED))],
            env=env)
    err = r.stderr.decode()
    assert r.returncode == 56 and err.count("llmreplay: fault 'chat:reset-after=3:event-delay=5' fired on POST") == 1, err
    env["LLMREPLAY_LOG"] = "warn"
    r = run(_unshare() + ["curl", "-sS", "https://api.openai.com/v1/chat/completions", "-d", request_body(load(SEED))],
            env=env)
    assert b"llmreplay: fault" not in r.stderr, r.stderr


def test_serve_resets_its_tcp_clients():
    import re, subprocess
    env = shim_env(None, LLMREPLAY_FAULTS="chat:reset-after=3")
    env.pop("LD_PRELOAD", None)
    p = subprocess.Popen([CLI, "serve", "-d", SEED_DIR, "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        r = run(["curl", "-sS", "-N", url + "/v1/chat/completions", "-d", request_body(load(SEED))])
        assert r.returncode == 56 and r.stdout.count(b"data: ") == 3, (r.returncode, r.stderr)
    finally:
        p.terminate()
        p.wait(timeout=20)
