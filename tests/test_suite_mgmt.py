"""Recordings that live with a test suite: per-test recordings under pytest (PYTEST_CURRENT_TEST),
usage reports merged from parallel runs and pruning, --only re-recording one test, the spend
guard, VCR's mode names, and `make install`. The suites are real pytest runs (Debian's
python3-pytest) against tests/fake_upstream.py, whose "count calls" answers differ per call."""
import contextlib, glob, hashlib, json, os, subprocess, urllib.parse
from lib import *

UPSTREAM = os.path.join(ROOT, "tests", "fake_upstream.py")

# The suite under test: two tests sending the same request, a third sending another one. The
# client is chosen by CLIENT: requests and urllib (socket layer), pycurl (libcurl layer).
SUITE = r'''
import json, os
BODY = {"model": "m", "messages": [{"role": "user", "content": "count calls please"}]}

def ask(body=BODY):
    url, client = os.environ["URL"], os.environ.get("CLIENT", "requests")
    data = json.dumps(body).encode()
    if client == "requests":
        import requests
        r = requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=20)
        status, text = r.status_code, r.text
    elif client == "urllib":
        import urllib.request, urllib.error
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}), timeout=20) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
    else:
        import io, pycurl
        out, c = io.BytesIO(), pycurl.Curl()
        c.setopt(c.URL, url); c.setopt(c.POSTFIELDS, data); c.setopt(c.WRITEDATA, out)
        c.setopt(c.HTTPHEADER, ["Content-Type: application/json"])
        c.perform()
        status, text = c.getinfo(c.RESPONSE_CODE), out.getvalue().decode()
        c.close()
    with open(os.environ["ANSWERS"], "a") as f:
        f.write(json.dumps({"test": os.environ["PYTEST_CURRENT_TEST"], "status": status, "text": text}) + "\n")
    return status, text

def test_a():
    assert ask()[0] == 200

def test_b():
    assert ask()[0] == 200

def test_other():
    ask({"model": "m", "messages": [{"role": "user", "content": "something else"}]})
'''


def upstream():
    return fake_upstream("--delay-ms", "1")


def _unshare():
    return unshare()


class Suite:
    """A temporary project: the pytest suite, its recordings in rec/, answers logged per call."""

    def __init__(self):
        self.tmp = tmpdir()
        self.rec = os.path.join(self.tmp, "rec")
        with open(os.path.join(self.tmp, "test_two.py"), "w") as f:
            f.write(SUITE)
        self.answers = os.path.join(self.tmp, "answers.jsonl")
        self.port = None

    def env(self, **extra):
        e = {k: v for k, v in os.environ.items() if not k.startswith(("LLMREPLAY_", "PYTEST_")) and k != "LD_PRELOAD"}
        e.update(LLMREPLAY_CACHE_DIR=CACHE, ANSWERS=self.answers, URL=f"http://127.0.0.1:{self.port or 9}/v1/chat/completions")
        if self.port:
            e["LLMREPLAY_HOSTS"] = f"127.0.0.1:{self.port}"
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def pytest(self, run_args, tests=("test_two.py",), offline=False, client="requests", extra_cmd=None, **env):
        if os.path.exists(self.answers):
            os.unlink(self.answers)
        cmd = extra_cmd or [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
        r = subprocess.run((_unshare() if offline else []) + [CLI, "run", *run_args, "--", *cmd], cwd=self.tmp,
                           env=self.env(CLIENT=client, **env), capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        return r, self.read_answers()

    def read_answers(self):
        if not os.path.exists(self.answers):
            return {}
        out = {}
        for line in open(self.answers):
            a = json.loads(line)
            name = a["test"].split("::")[1].split(" ")[0]
            out[name] = (a["status"], _content(a["text"]))
        return out

    def files(self):
        return {json.load(open(p))["test_id"]: p for p in glob.glob(os.path.join(self.rec, "*.json"))}

    @contextlib.contextmanager
    def live(self):
        """A fresh fake upstream for the calls made inside."""
        with upstream() as port:
            self.port = port
            yield port

    def recorded(self):
        """record() against a fresh upstream."""
        with self.live():
            return self.record()

    def record(self):
        """Record test_a and test_b once: the answers say call 1 and call 2."""
        r, ans = self.pytest(["-d", self.rec, "--mode", "record"], ("test_two.py::test_a", "test_two.py::test_b"))
        assert r.returncode == 0, r.stdout.decode()[-2000:] + r.stderr.decode()[-2000:]
        assert "(call 1)" in ans["test_a"][1] and "(call 2)" in ans["test_b"][1], ans
        return ans


def _content(text):
    try:
        return json.loads(text)["choices"][0]["message"]["content"]
    except Exception:
        return text


def _llama_name(rec):
    """llama-stack's file name for a recording: sha256 of its request and test id."""
    q = rec["request"]
    key = {"method": q["method"].upper(), "endpoint": urllib.parse.urlparse(q["url"]).path, "body": q["body"], "test_id": rec["test_id"]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest() + ".json"


def test_pytest_records_per_test_and_each_test_replays_its_own_answer():
    s = Suite()
    try:
        recorded = s.recorded()
        files = s.files()
        assert sorted(files) == ["test_two.py::test_a", "test_two.py::test_b"], files
        for tid, path in files.items():
            assert os.path.basename(path) == _llama_name(json.load(open(path))), path
        # the upstream is gone and there is no network: each test gets its own recording, also
        # when run alone (so it is the test id that chooses, not the serving order)
        for client in ("requests", "urllib", "pycurl"):
            r, ans = s.pytest(["-d", s.rec, "--strict"], ("test_two.py::test_a", "test_two.py::test_b"), offline=True, client=client)
            assert r.returncode == 0, (client, r.stdout.decode()[-1500:], r.stderr.decode()[-1500:])
            assert ans == recorded, (client, ans, recorded)
            r, ans = s.pytest(["-d", s.rec], ("test_two.py::test_b",), offline=True, client=client)
            assert r.returncode == 0 and ans["test_b"] == recorded["test_b"], (client, ans)
        # LLMREPLAY_TEST_ID overrides pytest's: both tests then get test_a's answer first
        r, ans = s.pytest(["-d", s.rec], ("test_two.py::test_b",), offline=True, LLMREPLAY_TEST_ID="test_two.py::test_a")
        assert ans["test_b"] == recorded["test_a"], ans
    finally:
        rmtree(s.tmp)


def test_reports_of_two_parallel_runs_feed_prune():
    s = Suite()
    try:
        s.recorded()
        files = s.files()
        stale = os.path.join(s.rec, "old", "stale.json")
        os.makedirs(os.path.dirname(stale))
        with open(SEED, "rb") as f, open(stale, "wb") as g:
            g.write(f.read())
        # two parallel runs, like two CI jobs: A runs test_a and, in a second process, a miss
        ra, rb = os.path.join(s.tmp, "a.json"), os.path.join(s.tmp, "b.json")
        pa = subprocess.Popen([CLI, "run", "-d", s.rec, "--report", ra, "--", "sh", "-c",
                               f"{PY} -m pytest -q -p no:cacheprovider test_two.py::test_a && "
                               f"{PY} -m pytest -q -p no:cacheprovider test_two.py::test_other"],
                              cwd=s.tmp, env=s.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        pb = subprocess.Popen([CLI, "run", "-d", s.rec, "--report", rb, "--", PY, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "test_two.py::test_b"], cwd=s.tmp, env=s.env(ANSWERS=s.answers + "b"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        (oa, ea), (ob, eb) = pa.communicate(timeout=120), pb.communicate(timeout=120)
        assert pa.returncode == 0 and pb.returncode == 0, (ea.decode()[-2000:], eb.decode()[-2000:])
        a, b = json.load(open(ra)), json.load(open(rb))
        # the summary line, at exit
        assert b"1 served from 1 recording, 1 miss, 2 unused, 0 live calls" in ea, ea
        assert a["served"] == [{"file": files["test_two.py::test_a"], "count": 1}], a["served"]
        assert a["misses"]["count"] == 1 and "something else" in json.dumps(a["misses"]["requests"][0]["body"])
        assert sorted(a["unused"]) == sorted([files["test_two.py::test_b"], stale]), a["unused"]
        assert sorted(b["unused"]) == sorted([files["test_two.py::test_a"], stale]), b["unused"]
        assert a["live"]["count"] == 0 and a["refused"]["count"] == 0
        r = run([CLI, "prune", "--dry-run", ra, rb], check=True)
        assert r.stdout.decode() == f"would remove {stale}\n" and os.path.exists(stale), r.stdout
        r = run([CLI, "prune", ra, rb], check=True)
        assert r.stdout.decode() == f"removed {stale}\n", r.stdout
        assert not os.path.exists(stale) and all(os.path.exists(p) for p in files.values())
        assert run([CLI, "prune", os.path.join(s.tmp, "test_two.py")]).returncode == 2
    finally:
        rmtree(s.tmp)


def test_only_rerecords_one_test_and_leaves_the_other_byte_identical():
    s = Suite()
    try:
        recorded = s.recorded()
        files = s.files()
        before = {t: open(p, "rb").read() for t, p in files.items()}
        report = os.path.join(s.tmp, "r.json")
        with s.live():  # a fresh upstream: its first answer says call 1 again
            r, ans = s.pytest(["-d", s.rec, "--mode", "record", "--only", "::test_b$", "--report", report],
                              ("test_two.py::test_a", "test_two.py::test_b"))
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        assert ans["test_a"] == recorded["test_a"] and "(call 1)" in ans["test_b"][1], ans
        assert s.files() == files
        assert open(files["test_two.py::test_a"], "rb").read() == before["test_two.py::test_a"]
        assert open(files["test_two.py::test_b"], "rb").read() != before["test_two.py::test_b"]
        rep = json.load(open(report))
        assert rep["live"]["count"] == 1 and rep["live"]["calls"][0]["test_id"] == "test_two.py::test_b", rep["live"]
        assert rep["live"]["prompt_tokens"] == 5 and rep["recorded"] == [files["test_two.py::test_b"]], rep
        # the replay gives test_b its new answer
        r, ans = s.pytest(["-d", s.rec], ("test_two.py::test_b",), offline=True)
        assert "(call 1)" in ans["test_b"][1], ans
        assert run([CLI, "run", "--only", "(", "--", "true"]).returncode == 2
        # an older copy of test_b's recording under another name is replaced too (it would
        # still compete with the new one); test_a's is not touched
        copy = os.path.join(s.rec, "copy-of-b.json")
        with open(files["test_two.py::test_b"], "rb") as f, open(copy, "wb") as g:
            g.write(f.read())
        with s.live():
            r, ans = s.pytest(["-d", s.rec, "--mode", "record", "--only", "::test_b$"], ("test_two.py::test_a", "test_two.py::test_b"))
        assert not os.path.exists(copy) and s.files() == files, os.listdir(s.rec)
        assert open(files["test_two.py::test_a"], "rb").read() == before["test_two.py::test_a"]
        # a broken LLMREPLAY_ONLY selects no call (rather than all): nothing goes upstream
        before_b = open(files["test_two.py::test_b"], "rb").read()
        with s.live():
            r, ans = s.pytest(["-d", s.rec, "--mode", "record"], ("test_two.py::test_a", "test_two.py::test_b"), LLMREPLAY_ONLY="x[")
        assert b"LLMREPLAY_ONLY=x[ is not valid" in r.stderr and "(call 1)" in ans["test_b"][1], (r.stderr, ans)
        assert ans["test_a"] == recorded["test_a"] and open(files["test_two.py::test_b"], "rb").read() == before_b
    finally:
        rmtree(s.tmp)


def test_spend_guard_stops_the_third_live_call_across_processes():
    s = Suite()
    try:
        report = os.path.join(s.tmp, "r.json")
        calls = " ; ".join(f"{PY} -c 'import test_two as t; t.ask({{\"model\": \"m\", \"messages\": [{{\"role\": \"user\", \"content\": \"call {i}\"}}]}})'"
                           for i in range(3))
        with s.live():
            r = subprocess.run([CLI, "run", "-d", s.rec, "--mode", "record", "--max-live", "2", "--report", report, "--",
                                "sh", "-c", calls], cwd=s.tmp, env=s.env(PYTEST_CURRENT_TEST="x::y (call)"),
                               capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r.stderr.decode()
            ans = [json.loads(l) for l in open(s.answers)]
            assert [a["status"] for a in ans] == [200, 200, 403], ans
            err = json.loads(ans[2]["text"])["error"]
            assert "LLMREPLAY_MAX_LIVE=2" in err["message"], err
            assert r.stderr.decode().count("LLMREPLAY_MAX_LIVE=2") == 1, r.stderr
            rep = json.load(open(report))
            assert rep["live"]["count"] == 2 and rep["refused"]["count"] == 1, rep
            assert len(glob.glob(os.path.join(s.rec, "*.json"))) == 2
            # a model outside --allow-models never goes upstream either (live mode, via pycurl)
            os.unlink(s.answers)
            r = subprocess.run([CLI, "run", "--mode", "live", "--allow-models", "gpt-*,o1*", "--", PY, "-c",
                                "import test_two as t; t.ask()"], cwd=s.tmp, env=s.env(PYTEST_CURRENT_TEST="x::y (call)", CLIENT="pycurl"),
                               capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
            a = json.loads(open(s.answers).readline())
            assert a["status"] == 403 and "LLMREPLAY_ALLOW_MODELS" in a["text"], a
            assert b"LLMREPLAY_ALLOW_MODELS=gpt-*,o1*" in r.stderr, r.stderr
    finally:
        rmtree(s.tmp)


def test_vcr_mode_names():
    s = Suite()
    try:
        for v in ("none", "once", "new_episodes", "all"):
            r = run([CLI, "config"], env=s.env(LLMREPLAY_MODE=v), check=True)
            assert f"LLMREPLAY_MODE             environment {v}" in r.stdout.decode(), r.stdout
        with s.live():
            r, ans = s.pytest(["-d", s.rec, "--mode", "once"], ("test_two.py::test_a",))  # empty: records
            assert r.returncode == 0 and len(s.files()) == 1, r.stderr
        # not empty: replays, and a new request misses rather than going upstream
        r, ans = s.pytest(["-d", s.rec, "--mode", "once"], ("test_two.py::test_a", "test_two.py::test_other"), offline=True)
        assert ans["test_a"][0] == 200 and ans["test_other"][0] == 404, ans
        r, ans = s.pytest(["-d", s.rec, "--mode", "none"], ("test_two.py::test_a",), offline=True)
        assert ans["test_a"][0] == 200, ans
    finally:
        rmtree(s.tmp)


def test_make_install_then_the_installed_cli_replays_the_seed():
    tmp = tmpdir()
    try:
        prefix = os.path.join(tmp, "usr")
        r = run(["make", "-s", "-C", ROOT, "install", f"PREFIX={prefix}"], check=True)
        cli = os.path.join(prefix, "bin", "llmreplay")
        for p in ("bin/llmreplay", "lib/llmreplay/libllmreplay.so", "share/man/man1/llmreplay.1",
                  "share/bash-completion/completions/llmreplay"):
            assert os.path.exists(os.path.join(prefix, p)), p
        v = run([cli, "--version"], check=True).stdout.decode()
        assert v.startswith("llmreplay ") and "libcurl: libcurl/" in v and "libssl: OpenSSL" in v and "cJSON: 1." in v, v
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_") and k != "LD_PRELOAD"}
        env["LLMREPLAY_CACHE_DIR"] = CACHE
        body = request_body(load(SEED))
        r = run(_unshare() + [cli, "run", "-d", SEED_DIR, "--strict", "--", "sh", "-c",
                              f"echo $LD_PRELOAD >&2; curl -sS https://api.openai.com/v1/chat/completions -d '{body}'"], env=env)
        assert r.returncode == 0 and r.stdout.endswith(b"data: [DONE]\n\n"), r.stderr
        assert os.path.join(prefix, "lib", "llmreplay", "libllmreplay.so").encode() in r.stderr, r.stderr
        man = run(["man", "-l", os.path.join(prefix, "share/man/man1/llmreplay.1")], env=dict(env, MANPAGER="cat", MANWIDTH="100"), check=True)
        text = man.stdout.decode()
        for word in ("prune", "--report", "--max-live", "LLMREPLAY_ALLOW_MODELS", "PYTEST_CURRENT_TEST", "LLMREPLAY_CACHE_DIR"):
            assert word in text, word
        comp = os.path.join(prefix, "share/bash-completion/completions/llmreplay")
        r = run(["bash", "-c", f"source {comp}; COMP_WORDS=(llmreplay pr); COMP_CWORD=1; _llmreplay; echo ${{COMPREPLY[@]}}; "
                 "COMP_WORDS=(llmreplay run --mode ne); COMP_CWORD=3; _llmreplay; echo ${COMPREPLY[@]}"], check=True)
        assert r.stdout.decode() == "prune\nnew_episodes\n", r.stdout
        run(["make", "-s", "-C", ROOT, "uninstall", f"PREFIX={prefix}"], check=True)
        assert not os.path.exists(cli) and not os.path.exists(os.path.join(prefix, "lib", "llmreplay"))
    finally:
        rmtree(tmp)
