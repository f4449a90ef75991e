"""libcurl semantics of replayed transfers, checked from C programs linked with libcurl."""
import os
from lib import *


def _bodies(tmp):
    seed = os.path.join(tmp, "seed.req")
    with open(seed, "w") as f:
        f.write(request_body(load(SEED)))
    err = os.path.join(tmp, "err.req")
    with open(err, "w") as f:
        f.write(request_body(load(os.path.join(EXAMPLES, "openai-rate-limit.json"))))
    return seed, err


def _semantics(env_fn):
    tmp = tmpdir()
    try:
        seed, err = _bodies(tmp)
        env = env_fn(shim_env([SEED_DIR, EXAMPLES], LLMREPLAY_LOG="quiet"))
        r = run([os.path.join(TESTS, "curl_semantics"), seed, err], env=env, timeout=120)
        lines = r.stdout.decode().splitlines()
        for line in lines:
            if line.startswith("ok "):
                yield line[3:], True, ""
            elif line.startswith("not ok "):
                name, _, detail = line[7:].partition(": ")
                yield name, False, detail
        if r.returncode not in (0, 1) or not lines:
            yield "exit", False, f"exit {r.returncode}: {r.stderr.decode()[-1500:]}"
    finally:
        rmtree(tmp)


def test_curl_semantics():
    yield from _semantics(lambda e: e)


def test_curl_semantics_asan():
    yield from _semantics(asan_env)


def test_host_with_its_own_cjson_symbols():
    tmp = tmpdir()
    try:
        seed, _ = _bodies(tmp)
        # -rdynamic puts the host's bogus cJSON_* into the global scope, ahead of any library
        exe = os.path.join(tmp, "host_cjson")
        run(["cc", "-rdynamic", "-o", exe, os.path.join(ROOT, "tests", "c", "host_cjson.c"), "-lcurl"], check=True)
        r = run([exe, seed], env=shim_env(SEED_DIR))
        assert r.returncode == 0, (r.stdout, r.stderr)
    finally:
        rmtree(tmp)


def test_python_pycurl():
    """pycurl: a Python extension, loaded RTLD_LOCAL with its libcurl, outside the global
    scope where dlsym(RTLD_NEXT) looks; its calls are replayed all the same."""
    code = r'''
import pycurl, sys
chunks = []
c = pycurl.Curl()
c.setopt(pycurl.URL, "http://localhost:8000/v1/chat/completions")
c.setopt(pycurl.POSTFIELDS, open(sys.argv[1]).read())
c.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json"])
c.setopt(pycurl.WRITEFUNCTION, chunks.append)
c.perform()
print(c.getinfo(pycurl.RESPONSE_CODE), len(chunks), b"".join(chunks).count(b"data: "))
'''
    tmp = tmpdir()
    try:
        seed, _ = _bodies(tmp)
        r = run([PY, "-c", code, seed], env=shim_env(SEED_DIR), check=True)
        status, nchunks, nevents = map(int, r.stdout.split())
        want = len(expected(load(SEED))[2])
        assert status == 200, r.stdout
        assert nchunks == want and nevents == want, (nchunks, nevents, want)
    finally:
        rmtree(tmp)


def test_fork_while_busy():
    tmp = tmpdir()
    try:
        seed, _ = _bodies(tmp)
        r = run([os.path.join(TESTS, "fork_busy"), seed], env=shim_env(SEED_DIR), timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr[-1000:])
    finally:
        rmtree(tmp)
