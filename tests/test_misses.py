"""A request without a recording: a non-retried 4xx that explains itself, one stderr line per
distinct request, the miss log, and never any network traffic."""
import json, os, shutil, subprocess
from lib import *

URL = "http://localhost:8000/v1/chat/completions"


def _miss_body(text="a question nobody recorded"):
    body = load(SEED)["request"]["body"]
    body = json.loads(json.dumps(body))
    body["messages"][0]["content"] = text
    return compact(body)


def test_miss_explains_itself():
    r = run(["curl", "-sS", "-i", URL, "-d", _miss_body()], env=shim_env(SEED_DIR), check=True)
    head, _, payload = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404"), head
    assert b"x-should-retry: false" in head.lower()
    err = json.loads(payload)["error"]
    msg = err["message"]
    assert err["code"] == "llmreplay_no_recording" and err["type"] == "invalid_request_error"
    for needle in ("/v1/chat/completions", '"gpt-4o"', os.path.basename(SEED), "messages[0].content",
                   "a question nobody recorded", "LLMREPLAY_MODE=record-if-missing"):
        assert needle in msg, (needle, msg)
    assert r.stderr.decode().count("llmreplay: no recording matches") == 1, r.stderr


def test_stderr_once_per_distinct_request_and_miss_log():
    tmp = tmpdir()
    try:
        log = os.path.join(tmp, "misses.jsonl")
        args = ["curl", "-sS", "-o", "/dev/null", URL, "-d", _miss_body("one")]
        for body in (_miss_body("one"), _miss_body("one"), _miss_body("two")):
            args += ["--next", "-o", "/dev/null", URL, "-d", body]
        r = run(args, env=shim_env(SEED_DIR, LLMREPLAY_MISS_LOG=log), check=True)
        lines = [l for l in r.stderr.decode().splitlines() if "no recording matches" in l]
        assert len(lines) == 2, r.stderr
        entries = [json.loads(l) for l in open(log)]
        assert len(entries) == 4, entries
        assert entries[0]["url"] == URL and entries[0]["body"]["messages"][0]["content"] == "one"
        assert entries[3]["body"]["messages"][0]["content"] == "two"
        assert entries[0]["nearest"] == SEED and entries[0]["model"] == "gpt-4o"
    finally:
        rmtree(tmp)


def test_ollama_miss_is_ollama_shaped():
    r = run(["curl", "-sS", "http://localhost:11434/api/generate", "-d", '{"model":"x","prompt":"y"}'],
            env=shim_env(EXAMPLES), check=True)
    d = json.loads(r.stdout)
    assert isinstance(d["error"], str) and "/api/generate" in d["error"], d


def test_operation_never_recorded():
    r = run(["curl", "-sS", "http://localhost:8000/v1/embeddings", "-d", '{"model":"m","input":"x"}'],
            env=shim_env(SEED_DIR), check=True)
    assert "there is no recording of /v1/embeddings" in json.loads(r.stdout)["error"]["message"]


def test_invalid_json_body_is_a_clear_miss():
    r = run(["curl", "-sS", URL, "-d", "{not json"], env=shim_env(SEED_DIR), check=True)
    assert "not valid JSON" in json.loads(r.stdout)["error"]["message"]


def test_replay_uses_no_network_at_all():
    """Under strace, neither a hit nor a miss makes any inet socket call, and both work inside
    an empty network namespace."""
    if not shutil.which("strace"):
        raise AssertionError("strace is missing: run scripts/install-deps.sh")
    tmp = tmpdir()
    try:
        trace = os.path.join(tmp, "trace")
        body = request_body(load(SEED))
        r = run(["strace", "-f", "-e", "trace=socket,connect,sendto", "-o", trace, "curl", "-sS", URL, "-d", body,
                 "--next", URL, "-d", _miss_body()], env=shim_env(SEED_DIR), check=True)
        calls = [l for l in open(trace) if "AF_INET" in l]
        assert not calls, calls[:5]
        assert r.stdout.count(b"data: ") == len(expected(load(SEED))[2])
    finally:
        rmtree(tmp)


def _unshare_ok():
    return run(["unshare", "-rn", "true"]).returncode == 0


def test_works_in_empty_network_namespace():
    if not _unshare_ok():
        print("SKIP: unshare -rn is not permitted here")
        return
    body = request_body(load(SEED))
    r = run(["unshare", "-rn", "curl", "-sS", "https://api.openai.com/v1/chat/completions", "-d", body],
            env=shim_env(SEED_DIR), check=True)
    assert r.stdout.endswith(b"data: [DONE]\n\n")
    # without the shim the same call cannot even resolve the name
    env = shim_env(SEED_DIR)
    env.pop("LD_PRELOAD")
    r = run(["unshare", "-rn", "curl", "-sS", "https://api.openai.com/v1/chat/completions", "-d", body], env=env)
    assert r.returncode in (6, 7), r.returncode
