"""Every recording and every call (issue 13, the matching side): recorded SDK arguments such as
extra_body are matched as the SDK sends them, a request is answered from its own endpoint
first, the providers' hosts are intercepted with an empty or missing directory (no DNS, no
connect), and record mode into an empty directory records from a socket client."""
import base64, glob, json, os, shutil, subprocess
from lib import *

NODE_DIR = os.path.join(ROOT, "tests", "node")
PY_CLIENT = os.path.join(ROOT, "tests", "clients", "py_client.py")
SAMPLE = os.path.join(SHARED, "corpus-2026-sample")
UPSTREAM = os.path.join(ROOT, "tests", "fake_upstream.py")


_unshare = unshare


def sample_items():
    """The 2026 sample's recordings of known operations in llama-stack's main format (its raw
    HTTP and Vertex recordings have tests of their own)."""
    files = sorted(glob.glob(os.path.join(SAMPLE, "**", "*.json"), recursive=True))
    return every_request([f for f in files if "body" in load(f).get("request", {})])


_jobs = client_jobs


def _check(items, results):
    check_client_results(items, results, ctype=False)


def test_extra_body_recordings_replay_as_the_sdk_sends_them():
    """The 2026 sample (extra_body for watsonx and vLLM) sent as the SDK sends it, extra_body
    merged, through Python requests, Node fetch and the curl CLI, answer for answer."""
    items = sample_items()
    assert any("extra_body" in load(f)["request"]["body"] for f, _, _ in items), "no extra_body recording"
    tmp = tmpdir()
    try:
        jf, of = os.path.join(tmp, "jobs.json"), os.path.join(tmp, "out.json")
        with open(jf, "w") as fh:
            json.dump(_jobs(items), fh)
        # llmreplay run: Node's built-in TLS is terminated, with the CA exported to it
        for cmd in ([PY, PY_CLIENT, "requests"], ["node", os.path.join(NODE_DIR, "client.mjs"), "fetch"]):
            r = run(_unshare() + [CLI, "run", "-d", SAMPLE, "--"] + cmd + [jf, of], env=shim_env(None), timeout=300)
            assert r.returncode == 0, r.stderr.decode()[-2000:]
            _check(items, json.load(open(of)))
        for f, rec, url in items:  # the libcurl layer
            body = request_body(rec)
            args = ["curl", "-sS", url] + (["-H", "Content-Type: application/json", "-d", body] if body else [])
            r = run(_unshare() + args, env=shim_env(SAMPLE), timeout=60)
            want = "".join(e for e in expected(rec)[2] if e is not None).encode()
            assert r.stdout == want, (f, r.stdout[:300])
    finally:
        rmtree(tmp)


def _rec(tmp, name, endpoint, content):
    body = {"model": "m", "prompt": "same body", "stream": False}
    data = {"id": "x", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": content, "finish_reason": "stop", "logprobs": None}]}
    rec = {"test_id": None, "request": {"method": "POST", "url": "http://localhost:8000/v1" + endpoint,
                                        "headers": {}, "body": body, "endpoint": endpoint, "model": "m"},
           "response": {"body": {"__type__": "openai.types.completion.Completion", "__data__": data},
                        "is_streaming": False}}
    with open(os.path.join(tmp, name), "w") as fh:
        json.dump(rec, fh)
    return json.dumps(body)


def test_same_body_chat_and_completions_each_get_their_own_answer():
    tmp = tmpdir()
    try:
        body = _rec(tmp, "a.json", "/v1/chat/completions", "from chat")
        _rec(tmp, "b.json", "/v1/completions", "from completions")
        for layers in ("curl,sockets,tls", "sockets"):
            env = shim_env(tmp, LLMREPLAY_LAYERS=layers)
            for ep, want in (("/v1/completions", "from completions"), ("/v1/chat/completions", "from chat"),
                             ("/v1/completions", "from completions")):
                r = run(_unshare() + ["curl", "-sS", "http://localhost:8000" + ep, "-d", body], env=env)
                assert json.loads(r.stdout)["choices"][0]["text"] == want, (layers, ep, r.stdout)
    finally:
        rmtree(tmp)


PY_OPENAI = r'''
import json, sys, urllib.request, urllib.error
req = urllib.request.Request("https://api.openai.com/v1/chat/completions", method="POST",
    data=json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"Content-Type": "application/json", "Authorization": "Bearer sk-x"})
try:
    urllib.request.urlopen(req, timeout=20)
    print("200")
except urllib.error.HTTPError as e:
    print(e.code, json.loads(e.read())["error"]["code"])
'''


def test_provider_hosts_never_reach_the_network_with_an_empty_or_missing_directory():
    """A Python client at https://api.openai.com with an empty, a missing and no directory:
    the documented 404 miss, and strace shows no DNS query and no inet connect."""
    tmp = tmpdir()
    try:
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        for d in (empty, os.path.join(tmp, "missing"), None):
            env = shim_env(d) if d else {k: v for k, v in shim_env(empty).items() if k != "LLMREPLAY_DIR"}
            r = run(_unshare() + [PY, "-c", PY_OPENAI], env=env, timeout=60)
            assert r.stdout.split() == [b"404", b"llmreplay_no_recording"], (d, r.stdout, r.stderr[-500:])
            trace = os.path.join(tmp, "trace")
            run(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", trace, PY, "-c", PY_OPENAI], env=env, timeout=60)
            calls = open(trace).read()
            assert "htons(53)" not in calls and "AF_INET" not in calls, (d, calls[-1500:])
    finally:
        rmtree(tmp)


def test_run_says_when_a_directory_is_empty():
    tmp = tmpdir()
    try:
        r = run([CLI, "run", "-d", tmp, "--", "true"], env=shim_env(None))
        assert r.returncode == 0 and b"holds no recording" in r.stderr, r.stderr
    finally:
        rmtree(tmp)


PY_OLLAMA = r'''
import json, sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:11434/api/chat", method="POST",
    data=json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "hello"}], "stream": False}).encode())
print(urllib.request.urlopen(req, timeout=20).read().decode())
'''


def test_record_into_an_empty_directory_from_python():
    """Ollama's port is intercepted always: record mode into a new directory writes the
    exchange with no LLMREPLAY_HOSTS, and it replays with the upstream gone."""
    tmp = tmpdir()
    try:
        rec = os.path.join(tmp, "rec")
        script = os.path.join(tmp, "go.sh")
        with open(script, "w") as fh:
            fh.write(f'env -u LD_PRELOAD {PY} {UPSTREAM} --port 11434 > {tmp}/port & UP=$!\n'
                     f'while [ ! -s {tmp}/port ]; do sleep 0.1; done\n'
                     f'LLMREPLAY_MODE=record {PY} -c \'{PY_OLLAMA}\' > {tmp}/live\n'
                     f'kill $UP\n')
        env = shim_env(None, LLMREPLAY_RECORD_DIR=rec)
        env.pop("LLMREPLAY_HOSTS", None)
        r = run(_unshare(lo=True) + ["sh", script], env=env, timeout=60)
        files = glob.glob(os.path.join(rec, "*.json"))
        assert len(files) == 1, (r.stderr[-1500:], os.listdir(tmp))
        r = run(_unshare() + [PY, "-c", PY_OLLAMA], env=shim_env(rec), timeout=60)
        assert r.stdout.decode() == open(os.path.join(tmp, "live")).read() and b"You said" in r.stdout, r.stdout
    finally:
        rmtree(tmp)
