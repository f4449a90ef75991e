"""Wire formats through the curl CLI: SSE with [DONE], event-named SSE (/v1/responses,
Anthropic /v1/messages), Ollama NDJSON and JSON, model lists, recorded errors, id mapping."""
import json, os
from lib import *


def _curl(url, body=None, dirs=EXAMPLES, extra=(), **env):
    args = ["curl", "-sS", "-i", url] + list(extra)
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", body]
    r = run(args, env=shim_env(dirs, **env), timeout=60)
    assert r.returncode == 0, r.stderr
    head, _, payload = r.stdout.partition(b"\r\n\r\n")
    return head.decode(), payload, r.stderr.decode()


def _replay_matches_oracle(name, base="http://localhost:8000"):
    rec = load(os.path.join(EXAMPLES, name))
    status, ctype, evs = expected(rec)
    head, payload, _ = _curl(base + endpoint_of(rec), request_body(rec))
    assert head.startswith(f"HTTP/1.1 {status} "), head
    assert f"Content-Type: {ctype}" in head, head
    want = "".join(e for e in evs if e is not None).encode()
    if evs[-1] is None:
        assert payload.startswith(want), payload[:200]
    else:
        assert payload == want, (payload[:300], want[:300])
    return head, payload


def test_openai_stream_sse_done():
    head, payload = _replay_matches_oracle("openai-chat-stream.json")
    assert payload.endswith(b"data: [DONE]\n\n")
    assert "Transfer-Encoding: chunked" in head


def test_openai_json_has_length():
    head, payload = _replay_matches_oracle("openai-chat.json")
    assert f"Content-Length: {len(payload)}" in head
    assert json.loads(payload)["choices"][0]["message"]["content"] == "Hello! I'm a recorded answer."


def test_responses_api_event_stream():
    _, payload = _replay_matches_oracle("responses-stream.json")
    assert payload.startswith(b"event: response.created\ndata: {")
    assert b"[DONE]" not in payload


def test_anthropic_messages_event_stream():
    _, payload = _replay_matches_oracle("anthropic-messages-stream.json", "https://api.anthropic.com")
    assert payload.startswith(b"event: message_start\ndata: ")
    assert payload.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_ollama_chat_json():
    _replay_matches_oracle("ollama-chat.json", "http://127.0.0.1:11434")


def test_ollama_generate_stream_ndjson():
    f = next(f for f in corpus_files() if load(f)["request"]["endpoint"] == "/api/generate"
             and load(f)["response"]["is_streaming"])
    rec = load(f)
    head, payload, _ = _curl("http://localhost:11434/api/generate", request_body(rec), dirs=CORPUS)
    assert "Content-Type: application/x-ndjson" in head
    lines = payload.decode().splitlines()
    assert [json.loads(l) for l in lines] == [payload_of(c) for c in rec["response"]["body"]]


def payload_of(c):
    return c["__data__"]


def test_recorded_error_status_and_body():
    _, payload = _replay_matches_oracle("openai-rate-limit.json")
    err = json.loads(payload)["error"]
    assert err["code"] == "rate_limit_exceeded" and err["message"] == "Rate limit reached for gpt-4o-mini"


def test_recorded_error_with_fail_flag():
    rec = load(os.path.join(EXAMPLES, "openai-rate-limit.json"))
    r = run(["curl", "-sS", "--fail", "http://localhost:8000/v1/chat/completions", "-d", request_body(rec)],
            env=shim_env(EXAMPLES))
    assert r.returncode == 22 and b"429" in r.stderr, (r.returncode, r.stderr)


def test_id_normalization_mapping_applied():
    _, payload = _replay_matches_oracle("id-normalized.json")
    # llama-stack replaces each original id (mapping value) by its normalized form (key)
    assert b"rec-normalized0001" in payload and b"ORIGINAL123" not in payload


def _ids(v, out):
    """Every string under an "id" key, as llama-stack's normalization would map them."""
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "id" and isinstance(x, str) and len(x) > 8:
                out.add(x)
            _ids(x, out)
    elif isinstance(v, list):
        for x in v:
            _ids(x, out)


def test_id_mapping_in_one_pass_as_llama_stack_on_real_recordings():
    """Real recordings given a mapping of all their ids (normalized "rec-<n>" -> original)
    replay exactly as llama-stack's chain of whole-text replacements makes them."""
    import hashlib
    tmp = tmpdir()
    try:
        done = 0
        for f, rec, url in distinct_requests(corpus_files()):
            ids = set()
            _ids(rec["response"], ids)
            if len(ids) < 2 or rec["response"].get("is_exception") or done == 12:
                continue
            rec["id_normalization_mapping"] = {"rec-" + hashlib.sha256(i.encode()).hexdigest()[:12]: i for i in sorted(ids)}
            d = os.path.join(tmp, str(done))
            os.makedirs(d)
            with open(os.path.join(d, "r.json"), "w") as fh:
                json.dump(rec, fh, indent=2)
            status, ctype, evs = expected(rec)
            head, payload, _ = _curl("http://localhost:8000" + endpoint_of(rec), request_body(rec), dirs=d)
            assert head.startswith(f"HTTP/1.1 {status} "), (f, head)
            want = "".join(e for e in evs if e is not None).encode()
            assert payload == want if evs[-1] is not None else payload.startswith(want), (f, payload[:300], want[:300])
            assert not any(i.encode() in payload for i in ids), f
            done += 1
        assert done == 12, done
    finally:
        rmtree(tmp)


def test_models_list_get_and_recorded_post():
    """A listing recorded as POST with an empty body answers a GET, as an OpenAI list object."""
    f = next(f for f in corpus_files() if load(f)["request"]["url"] == "https://api.openai.com/v1/v1/models")
    for extra in ([], ["-X", "POST", "-d", "{}"]):
        head, payload, _ = _curl("https://api.openai.com/v1/models", dirs=f, extra=extra)
        d = json.loads(payload)
        assert head.startswith("HTTP/1.1 200"), head
        assert d["object"] == "list" and [m["id"] for m in d["data"]] == [
            c["__data__"]["id"] for c in load(f)["response"]["body"]]


def test_url_quirks_prefix_and_host_ignored():
    """Recorded at https://api.openai.com/v1/v1/chat/completions; any base URL answers."""
    rec = load(SEED)
    for url in ("http://localhost:8000/v1/chat/completions", "https://gateway.example/openai/v1/chat/completions",
                "http://127.0.0.1:9/v1/v1/chat/completions", "https://x.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"):
        head, payload, _ = _curl(url, request_body(rec), dirs=SEED_DIR)
        assert head.startswith("HTTP/1.1 200"), (url, head)


def test_older_chat_completions_endpoint():
    f = next(f for f in corpus_files() if load(f)["request"]["endpoint"] == "/chat/completions")
    rec = load(f)
    head, payload, _ = _curl("http://localhost:11434/v1/chat/completions", request_body(rec), dirs=f)
    assert head.startswith("HTTP/1.1 200"), head


def test_canonical_body_matching():
    """Key order, whitespace and number spelling don't matter; llama-stack's float rounding applies."""
    rec = load(os.path.join(EXAMPLES, "ollama-chat.json"))
    body = rec["request"]["body"]
    variants = [
        json.dumps(dict(reversed(list(body.items()))), indent=4),
        json.dumps(body).replace('"temperature": 0.0', '"temperature": 0'),
        json.dumps(body).replace('"temperature": 0.0', '"temperature": 0.000001'),
    ]
    for v in variants:
        head, _, _ = _curl("http://localhost:11434/api/chat", v)
        assert head.startswith("HTTP/1.1 200"), (v, head)
    head, _, _ = _curl("http://localhost:11434/api/chat", json.dumps(body).replace('"temperature": 0.0', '"temperature": 0.1'))
    assert head.startswith("HTTP/1.1 404"), head


def test_ignore_fields():
    rec = load(SEED)
    body = dict(rec["request"]["body"], user="someone", stream_options={"include_usage": False})
    head, _, _ = _curl("http://localhost:8000/v1/chat/completions", json.dumps(body), dirs=SEED_DIR)
    assert head.startswith("HTTP/1.1 404"), head
    head, _, _ = _curl("http://localhost:8000/v1/chat/completions", json.dumps(body), dirs=SEED_DIR,
                       LLMREPLAY_IGNORE="user,stream_options")
    assert head.startswith("HTTP/1.1 200"), head


def test_several_recordings_served_in_order_then_last_repeats():
    tmp = tmpdir()
    try:
        rec = load(os.path.join(EXAMPLES, "openai-chat.json"))
        for i, name in enumerate(["a.json", "b.json", "c.json"]):
            r = json.loads(json.dumps(rec))
            r["response"]["body"]["__data__"]["choices"][0]["message"]["content"] = f"answer {name}"
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(r, f)
        args = ["curl", "-sS"]
        for i in range(5):
            if i:
                args.append("--next")
            args += ["-w", "\\n", "http://localhost:8000/v1/chat/completions", "-d", request_body(rec)]
        r = run(args, env=shim_env(tmp), check=True)
        got = [json.loads(l)["choices"][0]["message"]["content"] for l in r.stdout.decode().splitlines() if l]
        assert got == ["answer a.json", "answer b.json", "answer c.json", "answer c.json", "answer c.json"], got
    finally:
        rmtree(tmp)


def test_pacing_streams_events_over_time():
    """With LLMREPLAY_PACE_MS, the curl CLI (unbuffered) prints the first event well before the last."""
    import subprocess, time
    rec = load(os.path.join(EXAMPLES, "openai-chat-stream.json"))
    p = subprocess.Popen(["curl", "-sSN", "http://localhost:8000/v1/chat/completions", "-d", request_body(rec)],
                         env=shim_env(EXAMPLES, LLMREPLAY_PACE_MS=60), stdout=subprocess.PIPE)
    t0 = time.monotonic()
    first = p.stdout.readline()
    t_first = time.monotonic() - t0
    rest = p.stdout.read()
    t_last = time.monotonic() - t0
    p.wait()
    assert first.startswith(b"data: ")
    n = len(expected(rec)[2])
    assert t_last - t_first >= 0.06 * (n - 2), (t_first, t_last)
    assert rest.endswith(b"data: [DONE]\n\n")
