"""Loading recording directories: bad files warn once each and never harm the host; empty and
missing directories say so; the rest still replays."""
import json, os, random
from lib import *


def _replay_seed(dirs, **env):
    return run(["curl", "-sS", "http://localhost:8000/v1/chat/completions", "-d", request_body(load(SEED))],
               env=shim_env(dirs, **env), timeout=120)


def test_bad_files_warn_and_the_rest_loads():
    tmp = tmpdir()
    try:
        seed = open(SEED, "rb").read()
        files = {
            "empty.json": (b"", "empty file"),
            "truncated.json": (seed[:len(seed) // 2], "truncated"),
            "binary.json": (bytes(range(256)) * 8, "binary"),
            "huge.json": (b'{"pad":"' + b"x" * (2 << 20) + b'"}', "larger than 1 MiB"),
            "garbage.json": (b"hello world", "not valid JSON"),
            "array.json": (b"[1,2,3]", "not a llama-stack recording"),
            "norequest.json": (b'{"response":{"body":null}}', 'no "request"'),
        }
        os.makedirs(os.path.join(tmp, "sub", "deeper"))
        for name, (data, _) in files.items():
            with open(os.path.join(tmp, "sub" if name == "binary.json" else "", name), "wb") as f:
                f.write(data)
        with open(os.path.join(tmp, "sub", "deeper", "good.json"), "wb") as f:
            f.write(seed)
        with open(os.path.join(tmp, "notes.txt"), "w") as f:
            f.write("not a recording, not even looked at")
        r = _replay_seed(tmp, LLMREPLAY_MAX_FILE_MB=1)
        assert r.returncode == 0 and r.stdout.endswith(b"data: [DONE]\n\n"), r
        warnings = r.stderr.decode().splitlines()
        assert len(warnings) == len(files), warnings
        for name, (_, why) in files.items():
            line = next((w for w in warnings if name in w), None)
            assert line and why in line and line.startswith("llmreplay: "), (name, why, warnings)
        c = run([CLI, "check", tmp], env=shim_env(None, LLMREPLAY_MAX_FILE_MB=1))
        assert c.returncode == 1 and f"{len(files)} problems" in c.stdout.decode(), c.stdout
    finally:
        rmtree(tmp)


def test_empty_and_missing_directories():
    tmp = tmpdir()
    try:
        r = _replay_seed([tmp, os.path.join(tmp, "nope"), SEED_DIR])
        err = r.stderr.decode()
        assert "holds no *.json recordings" in err and "does not exist" in err, err
        assert r.stdout.endswith(b"data: [DONE]\n\n")
        r = _replay_seed(None)
        assert "LLMREPLAY_DIR is not set" in r.stderr.decode()
        assert b"no recording matches" in r.stdout
    finally:
        rmtree(tmp)


def test_mutated_recordings_never_crash_the_host():
    """Hundreds of corrupted copies of real recordings (bit flips, cuts, splices): the host
    process survives, and every answer is a well-formed HTTP response."""
    rnd = random.Random(1234)
    srcs = [open(f, "rb").read() for f in corpus_files()[::97]] + [open(SEED, "rb").read()]
    tmp = tmpdir()
    try:
        for i in range(300):
            d = bytearray(rnd.choice(srcs))
            op = i % 3
            if op == 0:
                for _ in range(rnd.randint(1, 20)):
                    d[rnd.randrange(len(d))] = rnd.randrange(256)
            elif op == 1:
                d = d[:rnd.randrange(len(d))]
            else:
                a, b = sorted(rnd.randrange(len(d)) for _ in range(2))
                d = d[:a] + d[b:]
            with open(os.path.join(tmp, f"m{i:03}.json"), "wb") as f:
                f.write(d)
        # ask for every original request: whichever mutant survives parsing may answer
        args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}\\n"]
        for k, src in enumerate(srcs):
            rec = json.loads(src)
            if k:
                args.append("--next")
            args += ["-o", "/dev/null", "-w", "%{http_code}\\n", request_url(rec) if request_body(rec) else
                     request_url(rec), "-d", request_body(rec) or "{}"]
        r = run(args, env=shim_env(tmp, LLMREPLAY_LOG="quiet"))
        assert r.returncode == 0, r
        codes = r.stdout.decode().split()
        assert len(codes) == len(srcs) and all(c in ("200", "404", "500", "429") for c in codes), codes
        c = run([CLI, "check", tmp])
        assert c.returncode == 1 and "recordings" in c.stdout.decode().splitlines()[-1]
    finally:
        rmtree(tmp)
