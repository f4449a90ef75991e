"""The persistent index: built once, reused by later processes through mmap, refreshed when a
recording is added, edited or deleted, rebuilt when corrupt, safe under a cold-start stampede."""
import glob, json, os, shutil, subprocess
from lib import *

URL = "http://localhost:8000/v1/chat/completions"


def _setup(n_copies=3):
    """A recordings dir with the example recordings, and a fresh cache dir."""
    root = tmpdir()
    rec, cache = os.path.join(root, "rec"), os.path.join(root, "cache")
    shutil.copytree(EXAMPLES, rec)
    return root, rec, cache


def _curl(rec_dir, cache, body, **env):
    env.setdefault("LLMREPLAY_LOG", "debug")
    return run(["curl", "-sS", URL, "-d", body], env=shim_env(rec_dir, LLMREPLAY_CACHE_DIR=cache, **env))


def _hello():
    return request_body(load(os.path.join(EXAMPLES, "openai-chat.json")))


def test_built_once_then_reused():
    root, rec, cache = _setup()
    try:
        r1 = _curl(rec, cache, _hello())
        assert b"indexed 7 recordings" in r1.stderr and b"using index" not in r1.stderr, r1.stderr
        assert len(glob.glob(os.path.join(cache, "index-*.bin"))) == 1
        r2 = _curl(rec, cache, _hello())
        assert b"using index" in r2.stderr and b"indexed" not in r2.stderr, r2.stderr
        assert r1.stdout == r2.stdout and b"recorded answer" in r2.stdout
        # the recording directory itself is never written to
        assert sorted(os.listdir(rec)) == sorted(os.listdir(EXAMPLES))
    finally:
        rmtree(root)


def test_added_edited_deleted_recordings_are_seen():
    root, rec, cache = _setup()
    try:
        _curl(rec, cache, _hello())
        # added: a new recording in a new subdirectory
        new = load(os.path.join(EXAMPLES, "openai-chat.json"))
        new["request"]["body"]["messages"][0]["content"] = "Say hello again"
        new["response"]["body"]["__data__"]["choices"][0]["message"]["content"] = "Hello again!"
        os.makedirs(os.path.join(rec, "more"))
        with open(os.path.join(rec, "more", "again.json"), "w") as f:
            json.dump(new, f)
        r = _curl(rec, cache, compact(new["request"]["body"]))
        assert b"Hello again!" in r.stdout, r
        # edited in place (the directory's mtime does not change): the answer...
        path = os.path.join(rec, "openai-chat.json")
        d = load(path)
        d["response"]["body"]["__data__"]["choices"][0]["message"]["content"] = "Edited answer."
        with open(path, "r+") as f:
            f.truncate(0)
            json.dump(d, f)
        r = _curl(rec, cache, _hello())
        assert b"Edited answer." in r.stdout, r.stdout
        # ...and the request
        d["request"]["body"]["messages"][0]["content"] = "Say hi"
        with open(path, "r+") as f:
            f.truncate(0)
            json.dump(d, f)
        r = _curl(rec, cache, compact(d["request"]["body"]))
        assert b"Edited answer." in r.stdout, r.stdout
        assert b"no recording matches" in _curl(rec, cache, _hello()).stdout
        # deleted
        os.unlink(os.path.join(rec, "more", "again.json"))
        r = _curl(rec, cache, compact(new["request"]["body"]))
        assert b"no recording matches" in r.stdout, r.stdout
    finally:
        rmtree(root)


def test_in_process_edit_is_seen_by_next_request():
    """One libcurl process, a recording added between two of its requests."""
    root, rec, cache = _setup()
    try:
        new = load(os.path.join(EXAMPLES, "openai-chat.json"))
        new["request"]["body"]["messages"][0]["content"] = "late arrival"
        body = compact(new["request"]["body"])
        # pycurl keeps one process alive across the edit: the first request misses, the
        # recording is added, the second request hits
        code = f'''
import pycurl, json, shutil, sys
def ask():
    out = []
    c = pycurl.Curl()
    c.setopt(pycurl.URL, {URL!r})
    c.setopt(pycurl.POSTFIELDS, {body!r})
    c.setopt(pycurl.WRITEFUNCTION, out.append)
    c.perform()
    return c.getinfo(pycurl.RESPONSE_CODE)
first = ask()
with open({os.path.join(rec, "late.json")!r}, "w") as f:
    json.dump({new!r}, f)
print(first, ask())
'''
        r = run([PY, "-c", code], env=shim_env(rec, LLMREPLAY_CACHE_DIR=cache, LLMREPLAY_LOG="quiet"), check=True)
        assert r.stdout.split() == [b"404", b"200"], r.stdout
    finally:
        rmtree(root)


def _index_file(cache):
    files = glob.glob(os.path.join(cache, "index-*.bin"))
    assert len(files) == 1, files
    return files[0]


def test_corrupt_index_is_detected_and_rebuilt():
    """Header, directory list and every record used are verified before use (records with
    their strings); the whole file on a miss. Whatever is damaged is never trusted."""
    root, rec, cache = _setup()
    try:
        good = _curl(rec, cache, _hello()).stdout
        ix = _index_file(cache)
        data = open(ix, "rb").read()
        used = data.rindex(b"openai-chat.json")  # the path of the recording this request uses
        flip = lambda d, i: d[:i] + bytes([d[i] ^ 0x01]) + d[i + 1:]
        corruptions = {
            "truncated": data[:len(data) // 2],
            "random bytes": os.urandom(len(data)),
            "wrong version": data[:8] + b"\x63\x00\x00\x00" + data[12:],
            "foreign file": b"PK\x03\x04" + data[4:],
            "flipped byte in the record used": flip(data, used + 3),
            "empty": b"",
        }
        for name, bad in corruptions.items():
            with open(ix, "wb") as f:
                f.write(bad)
            r = _curl(rec, cache, _hello(), LLMREPLAY_LOG="warn")
            assert r.stdout == good, (name, r.stdout[:200])
            warnings = [l for l in r.stderr.decode().splitlines() if "unusable" in l]
            assert len(warnings) == 1, (name, r.stderr)
            # rebuilt: the next process uses it silently
            r = _curl(rec, cache, _hello())
            assert b"using index" in r.stderr and r.stdout == good, (name, r.stderr)
        # a damaged record that this request does not use: the answer is right, and the first
        # miss verifies the whole file, warns once and rebuilds
        data = open(ix, "rb").read()
        with open(ix, "wb") as f:
            f.write(flip(data, data.rindex(b"ollama-chat.json") + 3))
        r = _curl(rec, cache, _hello(), LLMREPLAY_LOG="warn")
        assert r.stdout == good and r.stderr == b"", r.stderr
        r = _curl(rec, cache, '{"model":"gpt-4o-mini","messages":[]}', LLMREPLAY_LOG="warn")
        assert b"no recording matches" in r.stdout
        assert r.stderr.decode().count("unusable") == 1, r.stderr
        r = _curl(rec, cache, _hello())
        assert b"using index" in r.stderr and r.stdout == good
    finally:
        rmtree(root)


def test_cold_stampede_of_200_processes():
    root = tmpdir()
    try:
        cache = os.path.join(root, "cache")
        body = request_body(load(SEED))
        want = "".join(expected(load(SEED))[2]).encode()
        env = shim_env([CORPUS, SEED_DIR], LLMREPLAY_CACHE_DIR=cache, LLMREPLAY_LOG="debug")
        procs = [subprocess.Popen(["curl", "-sS", URL, "-d", body], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for _ in range(200)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs)
        assert all(o == want for o, _ in outs), sum(o != want for o, _ in outs)
        builds = sum(b"indexed" in e for _, e in outs)
        assert builds >= 1 and builds <= 10, builds  # the build lock makes the others wait and map
        assert not any(b"unusable" in e for _, e in outs)
    finally:
        rmtree(root)


def test_cache_off_and_unwritable_cache():
    root, rec, cache = _setup()
    try:
        r = _curl(rec, cache, _hello(), LLMREPLAY_CACHE="off")
        assert b"recorded answer" in r.stdout and not os.path.exists(cache)
        r = _curl(rec, "/proc/llmreplay-cannot-exist", _hello(), LLMREPLAY_LOG="warn")
        assert b"recorded answer" in r.stdout and r.stderr == b"", r.stderr
    finally:
        rmtree(root)


def test_read_only_recording_directory():
    if run(["unshare", "-rm", "true"]).returncode != 0:
        print("SKIP: mount namespaces are not permitted here")
        return
    root, rec, cache = _setup()
    try:
        # a real read-only mount: even root cannot write into the recordings
        script = (f"mount --bind {rec} {rec} && mount -o remount,ro,bind {rec} && "
                  f"touch {rec}/probe 2>/dev/null && echo WRITABLE; "
                  f"curl -sS {URL} -d '{_hello()}'")
        r = run(["unshare", "-rm", "sh", "-c", script], env=shim_env(rec, LLMREPLAY_CACHE_DIR=cache))
        assert b"WRITABLE" not in r.stdout and b"recorded answer" in r.stdout, r
        assert glob.glob(os.path.join(cache, "index-*.bin"))
    finally:
        rmtree(root)


def test_cli_index_and_other_commands_use_it():
    root, rec, cache = _setup()
    try:
        env = shim_env(None, LLMREPLAY_CACHE_DIR=cache, LD_PRELOAD=None)
        r = run([CLI, "index", rec], env=env, check=True)
        out = r.stdout.decode()
        assert out.startswith("indexed 7 recordings (0 problems, 0 unsupported) from 1 directory in "), out
        assert "index: " in out and cache in out
        env["LLMREPLAY_LOG"] = "debug"
        for cmd in (["ls", rec], ["check", rec], ["explain", "-d", rec, os.path.join(rec, "openai-chat.json")]):
            r = run([CLI] + cmd, env=env)
            assert r.returncode == 0 and b"using index" in r.stderr, (cmd, r.stderr)
        assert run([CLI, "index", rec], env=dict(env, LLMREPLAY_CACHE="off")).returncode == 2
    finally:
        rmtree(root)


def test_cold_build_with_two_threads_in_a_fresh_process():
    """Regression: the index builder's second thread may be the first to meet a hook (close()):
    nothing it resolves may wait on the building thread. Cache off, corpus: a cold two-thread build."""
    import test_corpus
    items = distinct_requests(corpus_files())[:3]
    test_corpus._run_client("easy", items, env=shim_env(CORPUS, LLMREPLAY_CACHE="off"))
