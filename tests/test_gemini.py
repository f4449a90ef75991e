"""Google Gemini and Vertex AI: the npm @google/genai SDK at its default endpoints over
terminated TLS (Gemini API, Vertex with a service-account key, express mode), raw REST calls
through curl and requests, llama-stack's Vertex recordings replayed text for text, and record
then replay against a fake Gemini upstream with the API key kept out of every file."""
import contextlib, glob, json, os, shutil, subprocess

from lib import CLI, CACHE, PY, ROOT, SHARED, load, rmtree, run, tmpdir, unshare

NODE = os.path.join(ROOT, "tests", "node", "gemini.mjs")
FAKE = os.path.join(ROOT, "tests", "fake_gemini.py")
SAMPLE = os.path.join(SHARED, "corpus-2026-sample")
KEY = "AIzaSy-llmreplay-SECRET-4f2a9c"


def _unshare():
    return unshare()


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_") and k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env["LLMREPLAY_CACHE_DIR"] = CACHE
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _vertex_recordings():
    out = []
    for f in sorted(glob.glob(os.path.join(SAMPLE, "**", "*.json"), recursive=True)):
        rec = load(f)
        if isinstance(rec, dict) and str(rec.get("request", {}).get("url", "")).startswith("vertexai:"):
            out.append((f, rec))
    return out


def _recorded_text(rec):
    body = rec["response"]["body"]
    chunks = body if isinstance(body, list) else [body]
    return "".join(p.get("text", "") for c in chunks for cand in c.get("candidates", [])[:1]
                   for p in cand.get("content", {}).get("parts", []))


def _service_account(tmp):
    """A service-account key file as Google issues them (a real RSA key, signing a JWT the SDK
    exchanges at oauth2.googleapis.com, which the replay answers)."""
    pem = os.path.join(tmp, "sa.pem")
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem], check=True)
    path = os.path.join(tmp, "sa.json")
    with open(pem) as f, open(path, "w") as o:
        json.dump({"type": "service_account", "project_id": "llmreplay-test", "private_key_id": "0" * 40,
                   "private_key": f.read(), "client_email": "replay@llmreplay-test.iam.gserviceaccount.com",
                   "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}, o)
    return path


def _sdk(dirs, args, env, record=False):
    cmd = [CLI, "run"] + (["--mode", "record"] if record else []) + [a for d in dirs for a in ("-d", d)] + ["--"]
    r = run(cmd + ([] if record else _unshare()) + ["node", NODE, json.dumps(args)], env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    return [json.loads(l) for l in r.stdout.decode().splitlines()], r.stderr.decode(errors="replace")


def test_vertex_corpus_through_the_sdk_in_every_mode():
    """Every llama-stack Vertex recording (SDK arguments and SDK objects) answers the npm SDK
    at its default endpoint, as the Gemini API, as Vertex AI (service-account key, token
    exchange answered) and in express mode, text for text."""
    recs = _vertex_recordings()
    assert len(recs) >= 8, len(recs)
    calls = [{"op": "stream" if r["request"]["url"].endswith("_stream") else "generate",
              "model": r["request"]["body"]["model"].rsplit("/", 1)[-1], "contents": r["request"]["body"]["contents"],
              "config": r["request"]["body"].get("config") or {}} for _, r in recs]
    want = [_recorded_text(r) for _, r in recs]
    tmp = tmpdir()
    try:
        sa = _service_account(tmp)
        for mode, env in (("gemini", _env()), ("vertex", _env(GOOGLE_APPLICATION_CREDENTIALS=sa)), ("express", _env())):
            got, err = _sdk([SAMPLE], {"mode": mode, "calls": calls}, env)
            assert [g.get("text") for g in got] == want, (mode, got, err[-2000:])
            assert all(w for w in want)
    finally:
        rmtree(tmp)


def _curl(url, body, env, *extra):
    r = run(_unshare() + ["curl", "-sS", "-i", url, "-H", "Content-Type: application/json", "-d", json.dumps(body)]
            + list(extra), env=env, timeout=60)
    head, _, rest = r.stdout.decode().partition("\r\n\r\n")
    return head, rest, r.stderr.decode(errors="replace")


PLANET = "Which planet do humans live on?"


def test_rest_calls_through_curl_and_requests():
    """Raw REST: curl with ?key= and x-goog-api-key, snake_case fields and a missing role
    normalised; SSE data: events and no [DONE]; Vertex's regional and global hosts; requests
    through hooked TLS; a miss in Google's error shape, the key in no log line."""
    tmp = tmpdir()
    try:
        miss_log = os.path.join(tmp, "miss.jsonl")
        env = _env(LD_PRELOAD=os.path.join(ROOT, "build", "libllmreplay.so"), LLMREPLAY_DIR=SAMPLE,
                   LLMREPLAY_MISS_LOG=miss_log)
        body = {"contents": [{"parts": [{"text": PLANET}]}]}
        head, out, _ = _curl("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:"
                             f"streamGenerateContent?alt=sse&key={KEY}", body, env)
        assert " 200 " in head.split("\r\n")[0] and "text/event-stream" in head, head
        events = [e for e in out.split("\n\n") if e.strip()]
        assert len(events) == 3 and all(e.startswith("data: {") for e in events) and "[DONE]" not in out, out
        texts = [json.loads(e[6:])["candidates"][0]["content"]["parts"][0]["text"] for e in events]
        assert "".join(texts) == "Humans live on **Earth**.\n", texts
        assert "sdk_http_response" not in out and "usageMetadata" in out and "usage_metadata" not in out
        snake = {"contents": [{"role": "user", "parts": [{"text": PLANET}]}], "generation_config": {}}
        for host, path in (("us-central1-aiplatform.googleapis.com", "/v1/projects/p/locations/us-central1"),
                           ("aiplatform.googleapis.com", "/v1beta1/projects/p/locations/global"),
                           ("aiplatform.googleapis.com", "/v1")):
            head, out, _ = _curl(f"https://{host}{path}/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                                 snake, env, "-H", f"x-goog-api-key: {KEY}")
            assert " 200 " in head.split("\r\n")[0] and out.count("data: ") == 3, (host, path, head, out)
        head, out, err = _curl(f"https://generativelanguage.googleapis.com/v1beta/models/gemini-9:generateContent?key={KEY}",
                               body, env)
        e = json.loads(out)["error"]
        assert " 404 " in head.split("\r\n")[0] and e["code"] == 404 and e["status"] == "NOT_FOUND", out
        assert 'model "gemini-9"' in e["message"] and "nearest recording" in e["message"], e
        assert KEY not in err and KEY not in open(miss_log).read()
        line = open(miss_log).read().splitlines()[-1]
        r = run([CLI, "explain", "-d", SAMPLE, "-"], input=line.encode(), env=_env(), timeout=60)
        assert r.returncode == 1 and b'model "gemini-9"); nearest recording: ' in r.stdout, r.stdout
        rec = glob.glob(os.path.join(SAMPLE, "**", "3369f95776bc*.json"), recursive=True)[0]
        r = run([CLI, "explain", "-d", SAMPLE, rec], env=_env(), timeout=60)
        assert r.returncode == 0 and r.stdout.decode().startswith("match: "), r.stdout
        py = ("import requests, sys\n"
              "r = requests.post('https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent',"
              " headers={'x-goog-api-key': sys.argv[2]}, json={'contents': [{'role': 'user', 'parts': [{'text': 'Hello!'},]},"
              " {'role': 'user', 'parts': [{'text': sys.argv[1]}]}]}, timeout=30)\n"
              "print(r.status_code, r.json()['candidates'][0]['content']['parts'][0]['text'][:60])\n")
        d3 = load(glob.glob(os.path.join(SAMPLE, "**", "d3bd848685b2*.json"), recursive=True)[0])
        second = d3["request"]["body"]["contents"][1]["parts"][0]["text"]
        r = run(_unshare() + [PY, "-c", py, second, KEY], env=env, timeout=60, check=True)
        assert r.stdout.decode().startswith("200 " + _recorded_text(d3)[:20]), r.stdout
    finally:
        rmtree(tmp)


def test_oauth_token_exchange_is_answered_in_replay():
    """An SDK in Vertex mode first exchanges a signed JWT at oauth2.googleapis.com/token: the
    replay hands it a fake bearer token, with no recording and no network."""
    env = _env(LD_PRELOAD=os.path.join(ROOT, "build", "libllmreplay.so"), LLMREPLAY_DIR=SAMPLE)
    r = run(_unshare() + ["curl", "-sS", "https://oauth2.googleapis.com/token", "-d",
                          "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=x.y.z"],
            env=env, timeout=60, check=True)
    tok = json.loads(r.stdout)
    assert tok["token_type"] == "Bearer" and tok["access_token"] and tok["expires_in"] > 0, tok


@contextlib.contextmanager
def _fake_gemini():
    p = subprocess.Popen([PY, FAKE, KEY], stdout=subprocess.PIPE, text=True)
    try:
        yield int(p.stdout.readline())
    finally:
        p.kill()
        p.wait()


CALLS = [{"op": "stream", "model": "gemini-2.0-flash", "contents": "hi there"},
         {"op": "generate", "model": "gemini-2.0-flash", "contents": "hello",
          "config": {"temperature": 0, "systemInstruction": "be brief", "maxOutputTokens": 50}},
         {"op": "embed", "model": "text-embedding-004", "contents": "embed me"},
         {"op": "count", "model": "gemini-2.0-flash", "contents": "count me"}]


def test_record_then_replay_against_a_fake_gemini_upstream():
    """The SDK (Gemini API, and Vertex express mode) and curl record against a fake upstream;
    the files are llama-stack's layout with the model in the URL and no key anywhere; then
    everything replays offline at the default endpoints, Vertex through a service account."""
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        with _fake_gemini() as port:
            base = f"http://127.0.0.1:{port}"
            env = _env(LLMREPLAY_HOSTS=f"127.0.0.1:{port}")
            live_g, _ = _sdk([rec], {"mode": "gemini", "apiKey": KEY, "baseUrl": base, "calls": CALLS}, env, record=True)
            live_v, _ = _sdk([rec], {"mode": "express", "apiKey": KEY, "baseUrl": base, "calls": CALLS[:3]}, env, record=True)
            (listed,), _ = _sdk([rec], {"mode": "gemini", "apiKey": KEY, "baseUrl": base, "calls": [{"op": "list"}]}, env,
                                record=True)
            assert listed["names"] == ["models/fake-gemini", "models/fake-embedding"], listed
            r = run([CLI, "run", "--mode", "record", "-d", rec, "--", "curl", "-sS",
                     f"{base}/v1beta/models/gemini-2.0-flash:generateContent?alt=json&key={KEY}",
                     "-H", "Content-Type: application/json", "-d", json.dumps({"contents": [{"parts": [{"text": "rate limit me"}]}]})],
                    env=env, timeout=60, check=True)
            assert b"RESOURCE_EXHAUSTED" in r.stdout, r.stdout
            trace = os.path.join(tmp, "trace.jsonl")
            r = run([CLI, "trace", "-o", trace, "--", "curl", "-sS", f"{base}/v1beta/models/gemini-2.0-flash:"
                     f"streamGenerateContent?key={KEY}&alt=sse", "-H", f"x-goog-api-key: {KEY}", "-H",
                     "Content-Type: application/json", "-d", json.dumps({"contents": [{"parts": [{"text": "traced"}]}]})],
                    env=env, timeout=60, check=True)
            assert b"traced" in r.stdout
            line = json.loads(open(trace).read().splitlines()[-1])
            assert KEY not in open(trace).read() and line["url"].endswith(":streamGenerateContent?alt=sse"), line
        assert live_g[0]["text"] == "You said: hi there." and live_g[1]["finish"] == "STOP", live_g
        files = sorted(os.listdir(rec))
        assert len(files) == 9, files
        for root, _, names in os.walk(tmp):  # every file written: recordings, trace
            for n in names:
                data = open(os.path.join(root, n), "rb").read()
                assert KEY.encode() not in data and b"ya29" not in data, n
        # a paged listing is one file (llama-stack's name leaves the query out): its last page,
        # served without a nextPageToken, so the SDK's pager ends
        (got,), _ = _sdk([rec], {"mode": "gemini", "calls": [{"op": "list"}]}, _env())
        assert got["names"] == ["models/fake-embedding"], got
        files = [f for f in files if not load(os.path.join(rec, f))["request"]["endpoint"].endswith("/models")]
        for f in files:
            text = open(os.path.join(rec, f)).read()
            assert KEY not in text and "ya29" not in text, f
            req = json.loads(text)["request"]
            assert req["endpoint"].startswith(("/v1beta/models/", "/v1beta1/publishers/google/models/")), req
            assert req["endpoint"] in req["url"] and req["model"] in req["endpoint"], req
        verbs = sorted(load(os.path.join(rec, f))["request"]["endpoint"].rsplit(":", 1)[1] for f in files)
        assert verbs == ["batchEmbedContents", "countTokens", "generateContent", "generateContent", "generateContent",
                         "predict", "streamGenerateContent", "streamGenerateContent"], verbs
        sa = _service_account(tmp)
        got_g, _ = _sdk([rec], {"mode": "gemini", "calls": CALLS}, _env())
        got_v, _ = _sdk([rec], {"mode": "vertex", "calls": CALLS[:3]}, _env(GOOGLE_APPLICATION_CREDENTIALS=sa))
        assert got_g == live_g and got_v == live_v, (got_g, live_g, got_v, live_v)
        # each API's recordings answer the other API's client: generateContent as it is, the
        # embedding methods (batchEmbedContents, Vertex's predict) reshaped for the one asked
        for api, prefix, mode, env_x, want in (("g", "/v1beta/models/", "vertex", _env(GOOGLE_APPLICATION_CREDENTIALS=sa), live_g),
                                               ("v", "/v1beta1/", "gemini", _env(), live_v)):
            only = os.path.join(tmp, api)
            os.mkdir(only)
            for f in files:
                if load(os.path.join(rec, f))["request"]["endpoint"].startswith(prefix):
                    shutil.copy(os.path.join(rec, f), only)
            got_x, _ = _sdk([only], {"mode": mode, "calls": CALLS[:3]}, env_x)
            assert got_x == want[:3], (api, got_x, want)
        # the recorded error replays as Google's error
        env = _env(LD_PRELOAD=os.path.join(ROOT, "build", "libllmreplay.so"), LLMREPLAY_DIR=rec)
        head, out, _ = _curl("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent",
                             {"contents": [{"role": "user", "parts": [{"text": "rate limit me"}]}]}, env)
        assert " 429 " in head.split("\r\n")[0] and json.loads(out)["error"]["status"] == "RESOURCE_EXHAUSTED", (head, out)
    finally:
        rmtree(tmp)


SDK_ARGS = {
    "test_id": "tests/integration/x.py::test_tools",
    "request": {"method": "POST", "url": "vertexai:///generate_content", "headers": {},
                "body": {"model": "publishers/google/models/gemini-2.5-flash",
                         "contents": [{"parts": [{"text": "Weather in Paris?"}]}],
                         "config": {"temperature": 0.0, "max_output_tokens": 64, "system_instruction": "Use tools.",
                                    "tools": [{"function_declarations": [{"name": "get_weather", "description": "weather",
                                               "parameters": {"type": "OBJECT", "properties": {"city_name": {"type": "STRING"}},
                                                              "required": ["city_name"], "property_ordering": ["city_name"]}}]}],
                                    "tool_config": {"function_calling_config": {"mode": "AUTO"}},
                                    "response_json_schema": None, "http_options": {"timeout": 5}}},
                "endpoint": "/generate_content", "model": "publishers/google/models/gemini-2.5-flash",
                "provider_metadata": {"provider": "vertexai"}},
    "response": {"body": {"sdk_http_response": {"headers": {}}, "candidates": [{"content": {"role": "model", "parts": [
        {"function_call": {"name": "get_weather", "args": {"city_name": "Paris"}}}]}, "finish_reason": "STOP"}],
        "model_version": "gemini-2.5-flash", "usage_metadata": {"total_token_count": 9},
        "automatic_function_calling_history": []}, "is_streaming": False},
    "id_normalization_mapping": {}}

NODE_TOOLS = r'''
import { GoogleGenAI } from "@google/genai";
const ai = new GoogleGenAI({ apiKey: "k" });
const r = await ai.models.generateContent({ model: "gemini-2.5-flash", contents: "Weather in Paris?", config: {
  temperature: 0, maxOutputTokens: 64, systemInstruction: "Use tools.",
  tools: [{ functionDeclarations: [{ name: "get_weather", description: "weather", parameters: { type: "OBJECT",
    properties: { city_name: { type: "STRING" } }, required: ["city_name"], propertyOrdering: ["city_name"] } }] }],
  toolConfig: { functionCallingConfig: { mode: "AUTO" } } } });
console.log(JSON.stringify({ calls: r.functionCalls, finish: r.candidates[0].finishReason, usage: r.usageMetadata }));
'''


def test_sdk_arguments_become_the_wire_request():
    """A Vertex recording of the Python SDK's arguments (snake_case config with tools and a
    system instruction, SDK options, nulls) matches the JS SDK's camelCase call: config split
    into generationConfig, systemInstruction, tools and toolConfig; the user's property names
    (city_name) untouched both in the request and in the answer's function arguments."""
    tmp = tmpdir()
    try:
        with open(os.path.join(tmp, "tools.json"), "w") as f:
            json.dump(SDK_ARGS, f)
        r = subprocess.run([CLI, "run", "-d", tmp, "--"] + _unshare() + ["node", "--input-type=module", "-e", NODE_TOOLS],
                           env=_env(), timeout=60, cwd=os.path.dirname(NODE), capture_output=True, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
        out = json.loads(r.stdout)
        assert out["calls"] == [{"name": "get_weather", "args": {"city_name": "Paris"}}], out
        assert out["finish"] == "STOP" and out["usage"] == {"totalTokenCount": 9}, out
    finally:
        rmtree(tmp)


PY_ASAN = r'''
import json, requests, sys
base = "https://generativelanguage.googleapis.com/v1beta/models/"
body = {"contents": [{"parts": [{"text": sys.argv[1]}]}], "generation_config": {}}
out = []
for model, verb in (("gemini-2.0-flash", "streamGenerateContent?alt=sse"), ("gemini-2.0-flash", "generateContent"),
                    ("models", None)):
    url = base + model + ":" + verb if verb else base[:-1]
    r = requests.post(url, json=body, timeout=30) if verb else requests.get(url, timeout=30)
    out.append([r.status_code, len(r.text)])
emb = {"content": {"parts": [{"text": "embed me"}]}, "taskType": "RETRIEVAL_QUERY"}
for url, body in (("https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004:embedContent", emb),
                  ("https://aiplatform.googleapis.com/v1/publishers/google/models/text-embedding-004:predict",
                   {"instances": [{"content": "embed me", "task_type": "RETRIEVAL_QUERY"}], "parameters": {"autoTruncate": True}})):
    out.append(requests.post(url, json=body, timeout=30).json())
r = requests.post("https://oauth2.googleapis.com/token", data={"grant_type": "x", "assertion": "a.b.c"}, timeout=30)
out.append([r.status_code, r.json()["token_type"]])
print(json.dumps(out))
'''


def test_gemini_paths_under_asan():
    """The conversions (SDK arguments, SDK answers, folded models), misses in Google's shape,
    the listing and the token exchange, through the sanitized shim."""
    from lib import asan_env, shim_env
    if not os.path.exists(os.path.join(ROOT, "build", "asan", "libllmreplay.so")):
        run(["make", "-s", "-C", ROOT, "asan"], check=True, timeout=600)
    tmp = tmpdir()
    try:
        with open(os.path.join(tmp, "batch.json"), "w") as f:  # a wire recording of the Gemini API's batch method
            json.dump({"test_id": None, "request": {"method": "POST", "url": "https://generativelanguage.googleapis.com/v1beta/"
                       "models/text-embedding-004:batchEmbedContents", "headers": {}, "body": {"requests": [
                           {"model": "models/text-embedding-004", "content": {"parts": [{"text": "embed me"}], "role": "user"},
                            "taskType": "RETRIEVAL_QUERY"}]},
                       "endpoint": "/v1beta/models/text-embedding-004:batchEmbedContents", "model": "text-embedding-004"},
                       "response": {"body": {"__type__": "google.genai.types.EmbedContentResponse",
                                             "__data__": {"embeddings": [{"values": [0.125, -1e-05, 3]}]}}, "is_streaming": False},
                       "id_normalization_mapping": {}}, f)
        env = asan_env(shim_env([SAMPLE, tmp]))
        r = run(_unshare() + [PY, "-c", PY_ASAN, PLANET], env=env, timeout=120)
    finally:
        rmtree(tmp)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0 and "AddressSanitizer" not in err and "runtime error" not in err, err[-3000:]
    out = json.loads(r.stdout)
    assert [o[0] for o in out[:3]] == [200, 404, 404] and out[5] == [200, "Bearer"], out
    assert out[3] == {"embedding": {"values": [0.125, -1e-05, 3]}}, out
    assert out[4] == {"predictions": [{"embeddings": {"values": [0.125, -1e-05, 3]}}]}, out


EMBED_ARGS = {
    "test_id": "tests/integration/inference/test_embeddings.py::test_embed[vertexai]",
    "request": {"method": "POST", "url": "vertexai:///embed_content", "headers": {},
                "body": {"model": "publishers/google/models/text-embedding-004", "contents": ["embed me", "and me"],
                         "config": {"task_type": "RETRIEVAL_DOCUMENT", "output_dimensionality": 3, "auto_truncate": None}},
                "endpoint": "/embed_content", "model": "publishers/google/models/text-embedding-004"},
    "response": {"body": {"sdk_http_response": {"headers": {}}, "embeddings": [
        {"values": [0.1, 0.2, 0.3], "statistics": {"token_count": 2.0, "truncated": False}},
        {"values": [0.4, 0.5, 0.6], "statistics": {"token_count": 2.0, "truncated": False}}],
        "metadata": {"billable_character_count": 14}}, "is_streaming": False},
    "id_normalization_mapping": {}}


def test_sdk_embed_content_recording_answers_both_apis():
    """A Vertex embed_content recording (SDK arguments: a list of texts, snake_case config)
    answers the SDK's embedContent as the Gemini API (batchEmbedContents) and as Vertex AI
    (predict), vectors as recorded."""
    tmp = tmpdir()
    try:
        d = os.path.join(tmp, "rec")
        os.mkdir(d)
        with open(os.path.join(d, "embed.json"), "w") as f:
            json.dump(EMBED_ARGS, f)
        call = {"op": "embed", "model": "text-embedding-004", "contents": ["embed me", "and me"],
                "config": {"taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 3}}
        sa = _service_account(tmp)
        for mode, env in (("gemini", _env()), ("vertex", _env(GOOGLE_APPLICATION_CREDENTIALS=sa))):
            got, err = _sdk([d], {"mode": mode, "calls": [call, dict(call, config={"taskType": "RETRIEVAL_QUERY"})]}, env)
            assert got[0] == {"values": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]}, (mode, got, err[-1500:])
            assert got[1]["status"] == 404 and "taskType" in got[1]["message"], got[1]
    finally:
        rmtree(tmp)
